"""The one error hierarchy of imagenet-hard.

Every error a user can cause derives from :class:`ImHardError`; the CLI prints it as one line and
exits non-zero. Subclasses also inherit the built-in they resemble, so ``except FileNotFoundError``
keeps working for library callers.
"""

from __future__ import annotations


class ImHardError(Exception):
    """Base class: a problem the user can act on, with a message that says what to do."""

    exit_code = 1


class UnknownNameError(ImHardError, KeyError):
    """A source, judge or other registered name that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidValueError(ImHardError, ValueError):
    """A value that fails validation (a record field, an option, a request body)."""


class ChecksumError(ImHardError, ValueError):
    """A downloaded or supplied file whose SHA-256 is not the expected one."""


class DownloadError(ImHardError, OSError):
    """A transfer that failed after its retries."""


class UnsafeArchiveError(ImHardError, ValueError):
    """An archive member that would be written outside the extraction folder or is a link, or
    a source folder entry that leads outside it."""


class OutsideHomeError(InvalidValueError):
    """A path read from a project table (relative to the data home) that leads outside it."""


class MissingFileError(ImHardError, FileNotFoundError):
    """A file the user must provide (an archive, a built source, a run) is not there."""


class MissingWeightsError(ImHardError, FileNotFoundError):
    """Model weights that are neither cached locally nor downloadable."""


class SubmissionError(ImHardError, RuntimeError):
    """A scored submission that failed (import error, bad output, timeout, crash)."""


class StalledError(ImHardError, TimeoutError):
    """A job whose other ranks stopped finishing work (their finished shards are kept)."""


class SandboxError(ImHardError, OSError):
    """No tool here can build the sandbox a submission must run in (or it would expose a secret)."""


def did_you_mean(name: str, known, *, n: int = 3, cutoff: float = 0.5) -> str:
    """``" Did you mean: a, b?"`` for the close matches of ``name`` among ``known`` (``n`` at
    most), or ``""``: the one wording of every unknown-name error."""
    import difflib

    close = difflib.get_close_matches(str(name), list(known), n=n, cutoff=cutoff)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def unknown_name(what: str, name, known, *, key: str | None = None, n: int = 3,
                 cutoff: float = 0.5) -> UnknownNameError:
    """``unknown <what> '<name>'. Did you mean: …? Known: a, b, c.`` as an error to raise;
    ``key`` (default ``name``) is the form compared with ``known``."""
    known = list(known)
    hint = did_you_mean(name if key is None else key, known, n=n, cutoff=cutoff)
    return UnknownNameError(f"unknown {what} {name!r}.{hint} Known: {', '.join(known)}.")
