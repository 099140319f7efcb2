"""Label facts are read from timm's and open_clip's files without importing either (both import
torch), so `build` and `review import` start without paying for torch."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from imagenet_hard import labels, build_source
assert len(labels.wnids()) == 1000 and labels.english_labels([0]) == ["tench"]
assert len(labels.clip_templates()) == 80
build_source("sample", home=sys.argv[1])
heavy = sorted(m for m in ("torch", "timm", "open_clip") if m in sys.modules)
print("HEAVY", heavy)
"""


def test_labels_and_a_build_leave_torch_unimported(tmp_path):
    res = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "home")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout, res.stdout


def test_the_lists_match_the_packages_own():
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
    from timm.data import ImageNetInfo

    from imagenet_hard import labels

    assert labels.clip_names() == tuple(IMAGENET_CLASSNAMES)
    assert list(labels.wnids()) == list(ImageNetInfo().label_names())
