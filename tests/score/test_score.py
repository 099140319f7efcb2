"""Scoring: exact numbers on a dataset with known labels, both submission forms, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scoring_data import MODEL_FORM, PREDICT_FORM, ROWS, encode, make_dataset, write_submission

from imagenet_hard.cli import main
from imagenet_hard.files import sha256_bytes
from imagenet_hard.fingerprint import fingerprint
from imagenet_hard.score import RunOptions, load_result, score
from imagenet_hard.score.metrics import expected_calibration_error, top5_of, wilson_interval

# Hand computations for ROWS (see tests/scoring_data.py):
# top-1 correct: r0 r2 r5 r7 → 4/8; top-5 correct: + r1 r4 → 6/8.
# ECE, bins of width 1/15 (bin = ceil(15p) - 1): r0 .90→13 |1-.90|; r1 .75→11 |0-.75|;
# r2 .62→9 |1-.62|; r3 .95 & r7 .98→14 |.5-.965|·2; r4 .31→4 |0-.31|; r5 .35→5 |1-.35|;
# r6 .50→7 |0-.50|. Sum = .10+.75+.38+.93+.31+.65+.50 = 3.62 → ECE = 3.62 / 8 = 0.4525.
# Wilson 95% for 4/8: 0.5 ± 1.96·sqrt(.25/8 + 1.96²/256) / (1 + 1.96²/8) = [0.2152, 0.7848].
EXPECTED = {"n": 8, "correct": 4, "accuracy": 0.5, "top5_accuracy": 0.75, "ece": 0.4525}
EXPECTED_ORIGINS = {  # origin: (n, correct, top-5 fraction, ECE)
    "imagenet": (3, 2, 1.0, (0.10 + 0.75 + 0.38) / 3),
    "imagenet_a": (2, 0, 0.5, (0.95 + 0.31) / 2),
    "imagenet_r": (3, 2, 2 / 3, (0.65 + 0.50 + 0.02) / 3),
}


def _check(result):
    m = result.metrics
    for key, value in EXPECTED.items():
        assert m[key] == pytest.approx(value, abs=1e-6), key
    assert m["accuracy_ci95"] == pytest.approx([0.2152, 0.7848], abs=1e-4)
    got = {r["origin"]: (r["n"], r["correct"], r["top5_accuracy"], r["ece"])
           for r in result.per_origin}
    assert got.keys() == EXPECTED_ORIGINS.keys()
    for origin, (n, k, t5, ece) in EXPECTED_ORIGINS.items():
        assert got[origin][:2] == (n, k)
        assert got[origin][2:] == pytest.approx((t5, ece), abs=1e-6)


@pytest.mark.parametrize("body", [PREDICT_FORM, MODEL_FORM], ids=["predict-form", "model-form"])
def test_controlled_submission_gives_hand_computed_numbers(tmp_path, body):
    data = make_dataset(tmp_path / "ds")
    sub = write_submission(tmp_path, body)
    run = score(sub, dataset=data, options=RunOptions(batch_size=3, workers=0))
    _check(run.result)
    preds = pq.read_table(run.predictions).to_pylist()
    assert [p["id"] for p in preds] == [r[0] for r in ROWS]
    assert [p["top5"] for p in preds] == [r[3] for r in ROWS]
    assert [p["correct"] for p in preds] == [True, False, True, False, False, True, False, True]
    assert preds[0]["top5_prob"][0] == pytest.approx(0.90, abs=1e-6)


def test_cli_writes_result_json_with_numbers_and_metadata(tmp_path):
    data = make_dataset(tmp_path / "ds")
    sub = write_submission(tmp_path, PREDICT_FORM, "oracle.py")
    out = tmp_path / "res" / "oracle.json"
    res = CliRunner().invoke(main, ["score", str(sub), "--dataset", str(data), "--out", str(out),
                                    "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    assert "top-1 accuracy 50.00%" in res.output and "imagenet_a" in res.output
    raw = json.loads(out.read_text())
    assert raw["schema_version"] == "1"
    assert isinstance(raw["metrics"]["accuracy"], float) and raw["metrics"]["n"] == 8
    assert raw["metadata"] == {"name": "Controlled", "uses_tta": False,
                               "extra_training_data": False}
    assert raw["submission"]["sha256"] == sha256_bytes(sub.read_bytes())
    assert raw["environment"]["device"] == "cpu" and raw["environment"]["torch"]
    # the loader settings: the --batch-size given, the workers devices.scoring_loader chose
    from imagenet_hard.devices import scoring_loader

    assert raw["environment"]["batch_size"] == 4
    assert raw["environment"]["loader_workers"] == scoring_loader("cpu")[0]
    assert "Wilson" in raw["protocol"] and "15 equal-width bins" in raw["protocol"]
    assert (out.parent / raw["predictions"]["file"]).is_file()
    _check(load_result(out))


def test_fingerprint_uses_row_index_without_id_column(tmp_path):
    data = make_dataset(tmp_path / "ds", with_id=False)
    sub = write_submission(tmp_path, PREDICT_FORM)
    run = score(sub, dataset=data, limit=5, options=RunOptions(batch_size=8))
    expected = fingerprint((str(i), lab, sha256_bytes(encode(t5, pct)))
                           for i, (_, _, lab, t5, pct) in enumerate(ROWS))
    assert run.result.dataset["fingerprint"] == expected
    assert run.result.dataset["scored"] == 5 and run.result.dataset["rows"] == 8
    assert [r["id"] for r in pq.read_table(run.predictions).to_pylist()] == list("01234")
    assert run.result.metrics["correct"] == 2  # r0, r2


def test_metrics_helpers():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    # logits are softmaxed, probability rows kept as they are
    logits = np.array([[0.0, np.log(3.0)] + [-np.inf] * 998])
    logits[0, 2:] = -50
    top5, prob = top5_of(logits)
    assert top5[0, :2].tolist() == [1, 0] and prob[0, 0] == pytest.approx(0.75, abs=1e-6)
    probs = np.zeros((1, 1000))
    probs[0, 3] = 0.6
    probs[0, 4] = 0.4
    assert top5_of(probs)[0][0, :2].tolist() == [3, 4]
    assert top5_of(probs)[1][0, 0] == pytest.approx(0.6)
    assert expected_calibration_error(np.array([0.5, 0.5]), np.array([1, 0])) == 0.0


def test_unknown_dataset_and_missing_default_are_clear(tmp_path):
    sub = write_submission(tmp_path, PREDICT_FORM)
    res = CliRunner().invoke(main, ["score", str(sub)])
    assert res.exit_code == 1 and "no published dataset" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["score", str(sub), "--dataset", "./nope"])
    assert res.exit_code == 1 and "not a Hub id" in res.output
