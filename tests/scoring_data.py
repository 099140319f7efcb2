"""Small scoring datasets with known labels, and submissions whose answers the tests control.

Each image is an 8×8 PNG whose first row encodes the answer the controlled submission gives:
pixel (k, 0) holds class ``top5[k]`` as R·256 + G, and pixel (0, 0)'s B channel holds the top-1
probability in hundredths.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

from PIL import Image

#: id, origin, label set, the controlled top-5, top-1 probability (%)
ROWS = [
    ("r0", "imagenet", [1], [1, 2, 3, 4, 5], 90),                 # top-1 correct
    ("r1", "imagenet", [7], [2, 7, 3, 4, 5], 75),                 # top-5 only
    ("r2", "imagenet", [9, 10], [10, 1, 2, 3, 4], 62),            # correct via 2nd label
    ("r3", "imagenet_a", [11], [1, 2, 3, 4, 5], 95),              # wrong
    ("r4", "imagenet_a", [12, 13], [14, 15, 16, 17, 13], 31),     # top-5 via 2nd label
    ("r5", "imagenet_r", [20], [20, 1, 2, 3, 4], 35),             # correct, low confidence
    ("r6", "imagenet_r", [21], [22, 23, 24, 25, 26], 50),         # wrong
    ("r7", "imagenet_r", [999, 0], [0, 1, 2, 3, 4], 98),          # correct via 2nd label
]


def encode(top5, pct: int) -> bytes:
    im = Image.new("RGB", (8, 8), (0, 0, 0))
    for k, c in enumerate(top5):
        im.putpixel((k, 0), (c // 256, c % 256, pct if k == 0 else 0))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def make_dataset(folder: Path, rows=ROWS, with_id: bool = True) -> Path:
    """Write ``folder/data/validation-00000-of-00001.parquet`` in the published schema."""
    from datasets import Dataset, Features, List, Value
    from datasets import Image as ImageF

    from imagenet_hard.labels import english_labels

    cols = {
        "image": [{"bytes": encode(t5, pct), "path": None} for _, _, _, t5, pct in rows],
        "label": [lab for _, _, lab, _, _ in rows],
        "origin": [o for _, o, _, _, _ in rows],
        "english_label": [english_labels(lab) for _, _, lab, _, _ in rows],
    }
    feats = {"image": ImageF(), "label": List(Value("int64")), "origin": Value("string"),
             "english_label": List(Value("string"))}
    if with_id:
        cols["id"] = [r[0] for r in rows]
        feats["id"] = Value("string")
    ds = Dataset.from_dict(cols, features=Features(feats))
    (folder / "data").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(folder / "data" / "validation-00000-of-00001.parquet"))
    return folder


#: The controlled answers as probabilities: p on top-1, then 20/15/10/5% of the rest, the last
#: half of the rest spread over the other 995 classes (always below the 5th).
DECODE = '''
import numpy as np

def decode(image):
    px = [image.getpixel((k, 0)) for k in range(5)]
    top5 = [r * 256 + g for r, g, _ in px]
    p = px[0][2] / 100.0
    rest = 1.0 - p
    out = np.full(1000, rest * 0.5 / 995, dtype=np.float64)
    for c, w in zip(top5, [p, rest * 0.2, rest * 0.15, rest * 0.1, rest * 0.05]):
        out[c] = w
    return out
'''

PREDICT_FORM = DECODE + '''
METADATA = {"name": "Controlled", "uses_tta": False, "extra_training_data": False}

class Oracle:
    def predict(self, images):
        return np.stack([decode(im) for im in images])

def load(device):
    return Oracle()
'''

MODEL_FORM = DECODE + '''
import torch

METADATA = {"name": "Controlled (model form)"}

def transform(image):
    return torch.from_numpy(np.log(decode(image)).astype(np.float32))   # logits

class Identity(torch.nn.Module):
    def forward(self, x):
        return x

model = Identity()
'''


def write_submission(folder: Path, body: str, name: str = "submission.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def sandbox_tools() -> list:
    """``bwrap`` and ``unshare`` as pytest params, each skipped (saying why) where it cannot
    build a sandbox on this machine."""
    import os

    import pytest

    from imagenet_hard import sandbox

    out = []
    for tool in ("bwrap", "unshare"):
        how, why = sandbox._working(tool, False, os.geteuid())
        out.append(pytest.param(tool, marks=pytest.mark.skipif(how is None, reason=why or "")))
    return out
