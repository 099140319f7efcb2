"""Where the data home is and what lives in it.

``$IMHARD_HOME`` or ``~/.cache/imagenet-hard``; every command also takes ``--home``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .errors import OutsideHomeError

DEFAULT_HOME = Path("~/.cache/imagenet-hard")
REBUILD = "rebuild the source with `imhard build --force`"


def data_home(home: str | os.PathLike | None = None) -> Path:
    """Resolve the data home: the argument, else ``$IMHARD_HOME``, else the default."""
    if home is None:
        home = os.environ.get("IMHARD_HOME") or DEFAULT_HOME
    return Path(home).expanduser().resolve()


def inside_home(home: str | os.PathLike, rel, what: str, fix: str = REBUILD) -> Path:
    """``home/rel`` for a path that a project table stores relative to the data home; anything
    that could lead outside it raises :class:`OutsideHomeError` (``what`` names the table and
    row, ``fix`` says what to do).

    The rule is lexical, links are not resolved: a ``--path`` source folder is linked into the
    home on purpose, so a link inside the home may point elsewhere. ``..`` is refused rather than
    normalised away because the OS applies it after following links (``a/link/../x`` is not
    ``a/x``), so no lexical normalisation of it can be trusted."""
    path = PurePosixPath(rel) if isinstance(rel, str) and "\x00" not in rel else None
    if path is None or path.is_absolute() or ".." in path.parts or not path.parts:
        shown = repr(rel[:200] if isinstance(rel, str) else rel)
        raise OutsideHomeError(f"{what}: path {shown} leads outside the data home; {fix}")
    return Path(home).joinpath(*path.parts)


def sources_dir(home=None) -> Path:
    return data_home(home) / "sources"


def mining_dir(home=None) -> Path:
    return data_home(home) / "mining"


def analysis_dir(home=None) -> Path:
    return data_home(home) / "analysis"


def review_db(home=None) -> Path:
    return data_home(home) / "review.duckdb"


def dist_dir(home=None) -> Path:
    return data_home(home) / "dist"


def scores_dir(home=None) -> Path:
    """``<home>/scores``: score results, their prediction caches, the images scored from a Hub
    dataset and the dataset fingerprints already computed."""
    return data_home(home) / "scores"
