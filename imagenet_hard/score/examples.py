"""The offline example submission, found from a checkout or an installed wheel.

``leaderboard/submissions/`` is installed as ``imagenet_hard.submissions``, so the demo and the
harness benchmark read the one reference file rather than a copy of it.
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
