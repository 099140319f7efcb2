"""``imhard fetch-weights FILE``: fill the weight caches the scoring sandbox reads, by importing
and loading a submission *unconfined*, with the network and the user's environment (tokens
included). Only for files the user trusts.

``imhard score`` never downloads: the sandbox mounts ``$TORCH_HOME/hub/checkpoints`` and the
Hugging Face hub cache's ``models--*`` read-only (:func:`sandbox.weight_caches`), so a file that
fetches its weights on first load (torchvision, timm, open_clip, the Hub) fails there until they
are cached. This runs the file once in a child process (``python -m imagenet_hard.score.fetch``):
import, and for the predict form ``load("cpu")``; then it reports what the caches gained.
"""

from __future__ import annotations

import collections
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SubmissionError
from . import sandbox

#: Lines of the child's output kept for an error without a traceback (a crash).
TAIL_LINES = 15


def fetch_command(submission: str | Path) -> str:
    """The command that fetches ``submission``'s weights, with the path as short as it is true
    here: relative to the working folder when the file is under it."""
    path = os.path.abspath(os.path.expanduser(str(submission)))
    rel = os.path.relpath(path)
    shown = rel if not rel.startswith(os.pardir) else path
    return f"imhard fetch-weights {shlex.quote(shown)}"


def fetch_hint(submission: str | Path) -> str:
    """What to do when a submission could not get its weights inside the sandbox."""
    return (f"fetch them first with `{fetch_command(submission)}`, which imports and loads the "
            "file unconfined and with network (only for a file you trust), then score again")


@dataclass
class FetchReport:
    submission: Path
    #: What the weight caches gained: (path, bytes added): a file of the torch checkpoints
    #: folder, or a ``models--*`` repository of the hub cache.
    added: list[tuple[str, int]] = field(default_factory=list)
    caches: list[str] = field(default_factory=list)

    def summary(self) -> str:
        name = self.submission.name
        if not self.added:
            return (f"{name}: nothing new in the weight caches the sandbox reads "
                    f"({', '.join(self.caches)}): its weights were there already, ship in a "
                    "package, or went somewhere the sandbox does not show")
        lines = [f"{name}: fetched into the weight caches the sandbox reads (read-only there):"]
        lines += [f"  {path} (+{sandbox.format_size(n)})" for path, n in self.added]
        lines.append(f"now score it: imhard score {shlex.quote(str(self.submission))}")
        return "\n".join(lines)


def _bytes(path: Path) -> int:
    """Bytes of the regular files at or below ``path`` (links not followed)."""
    if path.is_file() and not path.is_symlink():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total


def cache_entries() -> dict[str, int]:
    """Bytes of each entry of the weight caches: a file of ``$TORCH_HOME/hub/checkpoints``, or a
    ``models--*`` repository of the hub cache."""
    out = {}
    for root in map(Path, sandbox.weight_caches()):
        entries = [root] if root.name.startswith("models--") else (
            sorted(root.iterdir()) if root.is_dir() else [])
        for entry in entries:
            out[str(entry)] = _bytes(entry)
    return out


def _cache_names() -> list[str]:
    return [os.path.join(sandbox.torch_home(), "hub", "checkpoints"),
            os.path.join(sandbox.hub_cache(), "models--*")]


def fetch_weights(submission: str | Path, device: str = "cpu",
                  on_output: Callable[[str], None] | None = None) -> FetchReport:
    """Import ``submission`` and, in the predict form, call ``load(device)``, unconfined and
    with network in a child process, so that the weights it downloads land in the caches the
    sandbox reads; ``on_output`` gets each line it prints. A :class:`SubmissionError` with its
    traceback when it fails."""
    path = Path(submission).expanduser()
    if not path.is_file():
        raise SubmissionError(f"{submission}: no such file; give the submission's path")
    before = cache_entries()
    with tempfile.TemporaryDirectory(prefix="imhard-fetch-") as tmp:
        err_file = os.path.join(tmp, "error.txt")
        cmd = [sys.executable, "-m", "imagenet_hard.score.fetch", str(path.resolve()), device,
               err_file]
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, errors="replace",
                              env=env) as proc:
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                if on_output:
                    on_output(line)
        error = Path(err_file).read_text() if os.path.exists(err_file) else ""
    if proc.returncode:
        body = error.rstrip() or "\n".join(t for t in tail if t.strip()) or \
            f"exit status {proc.returncode}"
        raise SubmissionError(f"{path.name}: fetching its weights failed, so fix what the "
                              f"submission raised and run again:\n{body}")
    after = cache_entries()
    added = [(p, n - before.get(p, 0)) for p, n in after.items() if n > before.get(p, 0)]
    return FetchReport(path, added, _cache_names())


def _child(path: str, device: str, err_file: str) -> int:
    """In the child: import the file and load it; any failure goes to ``err_file``."""
    from . import contract
    from .worker import submission_traceback

    try:
        sub = contract.inspect(contract.import_file(path))
        if sub.form == "predict":
            contract.build_predictor(sub, device)
    except contract.ContractError as exc:
        Path(err_file).write_text(str(exc))
        return 2
    except BaseException as exc:   # the submission's own failure, with its traceback
        Path(err_file).write_text(submission_traceback(exc))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:4]))
