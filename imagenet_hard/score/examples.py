"""The offline example submission (``leaderboard/submissions/``, installed as
``imagenet_hard.submissions``), the one file the demo and the benchmarks score.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path


def write_example_submission(dest: str | Path) -> Path:
    """Copy the offline EfficientNet-Lite0 submission to ``dest`` and return its path."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = resources.files("imagenet_hard.submissions").joinpath("efficientnet_lite0.py")
    with resources.as_file(src) as f:
        shutil.copyfile(f, dest)
    return dest
