"""verify re-runs a result's submission; the real EfficientNet-Lite0 submission scores for real;
reference submissions without downloadable weights fail with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scoring_data import PREDICT_FORM, make_dataset, write_submission

from imagenet_hard.catalog import parse as parse_table
from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError
from imagenet_hard.score import RunOptions, score, verify
from imagenet_hard.score.sets import folder_from_source

SUBMISSIONS = Path(__file__).resolve().parents[2] / "leaderboard" / "submissions"

RANDOM = '''
import numpy as np
METADATA = {"name": "coin flips", "seed": 3}
class Dice:
    def predict(self, images):
        return np.random.rand(len(images), 1000)  # seeded per batch by the harness
def load(device):
    return Dice()
'''


def test_verify_passes_for_a_deterministic_submission(tmp_path):
    data = make_dataset(tmp_path / "ds")
    sub = write_submission(tmp_path, PREDICT_FORM)
    run = score(sub, dataset=data, out=tmp_path / "r.json", options=RunOptions(batch_size=4))
    res = CliRunner().invoke(main, ["verify", str(run.path), "--sample", "5", "--seed", "1",
                                    "--batch-size", "2"])
    assert res.exit_code == 0, res.output
    assert "PASS: re-ran 5 sampled rows; top-1 agrees on 100.0%" in res.output


def test_verify_fails_for_answers_that_change_with_the_batch(tmp_path):
    data = make_dataset(tmp_path / "ds")
    sub = write_submission(tmp_path, RANDOM)
    run = score(sub, dataset=data, out=tmp_path / "r.json", options=RunOptions(batch_size=8))
    again = score(sub, dataset=data, out=tmp_path / "r2.json", options=RunOptions(batch_size=8))
    assert (pq.read_table(run.predictions).column("top5").to_pylist()
            == pq.read_table(again.predictions).column("top5").to_pylist())  # same seed, same answers
    report = verify(run.path, sample=8, options=RunOptions(batch_size=3))
    assert not report.passed and report.top1_agreement < 0.99
    res = CliRunner().invoke(main, ["verify", str(run.path), "--sample", "8", "--batch-size", "3"])
    assert res.exit_code == 1 and "FAIL" in res.output and "did not verify" in res.output


def test_verify_catches_edited_claims_and_changed_files(tmp_path):
    data = make_dataset(tmp_path / "ds")
    sub = write_submission(tmp_path, PREDICT_FORM)
    run = score(sub, dataset=data, out=tmp_path / "r.json", options=RunOptions(batch_size=4))
    raw = json.loads(run.path.read_text())
    raw["metrics"]["accuracy"] = 0.75
    run.path.write_text(json.dumps(raw))
    report = verify(run.path, sample=3)
    assert not report.passed
    assert any("accuracy: claimed 0.75, the predictions give 0.5" in p for p in report.problems)
    sub.write_text(sub.read_text() + "\n# changed\n")
    with pytest.raises(InvalidValueError, match="not the file that was scored"):
        verify(run.path, sample=3)


@pytest.mark.slow
def test_efficientnet_lite0_submission_scores_the_sample_for_real(tmp_path, sample_home):
    data = folder_from_source(parse_table("sample").path(sample_home), tmp_path / "sample",
                              home=sample_home)
    res = CliRunner().invoke(main, ["score", str(SUBMISSIONS / "efficientnet_lite0.py"),
                                    "--dataset", str(data), "--batch-size", "4", "--out",
                                    str(tmp_path / "lite0.json")])
    assert res.exit_code == 0, res.output
    preds = {r["id"]: r for r in pq.read_table(tmp_path / "lite0.predictions.parquet").to_pylist()}
    assert preds["sample/n02123045/chelsea.png"]["top5"][0] == 281   # tabby cat
    assert preds["sample/n07920052/coffee.png"]["top5"][0] == 967    # espresso
    result = json.loads((tmp_path / "lite0.json").read_text())
    assert result["metadata"]["name"] == "EfficientNet-Lite0"
    assert result["metrics"]["n"] == 9 and result["metrics"]["correct"] >= 2
    assert result["metrics"]["correct"] == sum(p["correct"] for p in preds.values())


@pytest.mark.parametrize("name,needles", [
    ("resnet18.py", ["importing the submission failed", "MissingWeightsError", "resnet18-f37072fd.pth", "TORCH_HOME"]),
    pytest.param("clip_vit_l_14.py", ["open_clip:ViT-L-14/openai", "HF_HOME"],
                 marks=pytest.mark.slow),
    pytest.param("tf_efficientnet_l2_ns_800.py", ["weights for timm:tf_efficientnet_l2",
                                                  "hf download"], marks=pytest.mark.slow),
])
def test_reference_without_weights_fails_clearly(tmp_path, name, needles):
    data = make_dataset(tmp_path / "ds")
    res = CliRunner().invoke(main, ["score", str(SUBMISSIONS / name), "--dataset", str(data),
                                    "--limit", "1", "--no-network", "--quiet"])
    if "refused a new network namespace" in res.output:
        pytest.skip("no network namespaces here")
    assert res.exit_code == 1
    for needle in needles:
        assert needle in res.output, (needle, res.output)


def test_packaged_example_is_the_reference_submission(tmp_path):
    from imagenet_hard.score.examples import write_example_submission

    path = write_example_submission(tmp_path / "lite0.py")
    assert path.read_text() == (SUBMISSIONS / "efficientnet_lite0.py").read_text()
