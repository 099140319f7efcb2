"""What a scoring child costs before its first image: it imports what the submission imports and
little else. torchvision (whose import pulls in torch._dynamo, ~2 s) only when the submission
uses it, never ``datasets`` (~0.7 s); these were most of a child's start."""

from __future__ import annotations

import subprocess
import sys

from scoring_data import make_dataset, write_submission

from imagenet_hard.score import RunOptions, score

REPORTS_ITS_MODULES = '''
import sys
import numpy as np
import torch

METADATA = {"name": "modules"}

def transform(image):
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1) / 255)

class Model(torch.nn.Module):
    def forward(self, x):
        heavy = sorted(m for m in ("torchvision", "datasets") if m in sys.modules)
        print("HEAVY", ",".join(heavy) or "none", flush=True)
        return torch.zeros(len(x), 1000)

model = Model()
'''


def test_a_child_imports_neither_torchvision_nor_datasets_unless_the_submission_does(tmp_path):
    data = make_dataset(tmp_path / "ds")
    (tmp_path / "sub").mkdir()
    sub = write_submission(tmp_path / "sub", REPORTS_ITS_MODULES)
    lines = []
    score(sub, dataset=data, out=tmp_path / "out" / "r.json",
          options=RunOptions(batch_size=8, workers=0, on_output=lines.append))
    assert [x for x in lines if x.startswith("HEAVY")] == ["HEAVY none"], lines


def test_the_rgb_point_looks_for_a_compose_only_once_torchvision_is_loaded():
    code = ("import sys\n"
            "from imagenet_hard.score.rgb_point import rgb_after_resize_crop\n"
            "r = rgb_after_resize_crop(lambda im: im)\n"
            "assert r.head == () and len(r.tail) == 1, r\n"
            "assert 'torchvision' not in sys.modules\n"
            "from torchvision import transforms as T\n"
            "r = rgb_after_resize_crop(T.Compose([T.Resize(4), T.CenterCrop(2), T.ToTensor()]))\n"
            "print(r)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "RGBAfterResizeCrop(Resize → CenterCrop → RGB → ToTensor)"
