"""The harness seeds before it imports the submission: random weights made at import are the same
in every run, so verify re-runs the model that was scored (issue 21, "A newcomer's first hour")."""

from __future__ import annotations

from scoring_data import make_dataset, write_submission

from imagenet_hard.score import RunOptions, score, verify

RANDOM_AT_IMPORT = '''
import numpy as np
import torch

METADATA = {"name": "random linear", "seed": 5}

def transform(image):
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1) / 255)

model = torch.nn.Linear(8 * 8 * 3, 1000)   # random init, made while the file is imported
'''


def test_random_weights_made_at_import_verify(tmp_path):
    data = make_dataset(tmp_path / "ds")
    (tmp_path / "sub").mkdir()
    sub = write_submission(tmp_path / "sub", RANDOM_AT_IMPORT)
    run = score(sub, dataset=data, out=tmp_path / "out" / "r.json",
                options=RunOptions(batch_size=4, workers=0))
    report = verify(run.path, sample=8, options=RunOptions(batch_size=3, workers=0))
    assert report.passed, report.summary()
    assert report.top1_agreement == 1.0
