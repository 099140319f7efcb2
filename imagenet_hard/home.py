"""Where the data home is and what lives in it (DESIGN §3).

``$IMHARD_HOME`` or ``~/.cache/imagenet-hard``; every command also takes ``--home``.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = Path("~/.cache/imagenet-hard")


def data_home(home: str | os.PathLike | None = None) -> Path:
    """Resolve the data home: the argument, else ``$IMHARD_HOME``, else the default."""
    if home is None:
        home = os.environ.get("IMHARD_HOME") or DEFAULT_HOME
    return Path(home).expanduser().resolve()


def downloads_dir(home=None) -> Path:
    return data_home(home) / "downloads"


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


def source_table_path(name: str, home=None) -> Path:
    """``<home>/sources/<name>.parquet`` with the name in file form (``imagenet_a``)."""
    return sources_dir(home) / f"{name.replace('-', '_')}.parquet"


def rejects_table_path(name: str, home=None) -> Path:
    return sources_dir(home) / f"{name.replace('-', '_')}.rejects.parquet"
