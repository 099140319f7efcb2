"""Each set's protocol, with a controlled submission on small built tables of real photos and the
expected numbers worked out by hand (rows and answers: tests/suite_data.py)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import suite_data as sd

from imagenet_hard import labels
from imagenet_hard.errors import InvalidValueError
from imagenet_hard.score import RunOptions
from imagenet_hard.score.metrics import top5_of, wilson_interval
from imagenet_hard.score.protocols import (
    IMAGENET_C_BENCHMARK,
    IMAGENET_C_HELD_OUT,
    PROTOCOLS,
    SEVERITIES,
    corruption_of,
    imagenet_c_summary,
    protocol_for,
)
from imagenet_hard.score.suite import score_suite

OPTS = RunOptions(batch_size=2, workers=0)


def _run(tmp_path, home, names, body=sd.CONTROLLED, **kw):
    sub = sd.write_submission(tmp_path / "subs", body)
    return score_suite(sub, sets=names, home=home, out=tmp_path / "out" / "r.suite.json",
                       options=OPTS, **kw)


def _preds(run, name):
    entry = run.result.entry(name)
    return pq.read_table(run.path.parent / entry["predictions"]["file"]).to_pylist()


def test_imagenet_a_takes_the_arg_max_within_its_200_classes(tmp_path, isolated_home):
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    run = _run(tmp_path, isolated_home, ["imagenet-a"])
    e = run.result.entry("imagenet-a")
    # Row 1's best class over 1000 is tench (0, not among the 200); its best among the 200 is the
    # label: correct. Row 2 puts another of the 200 first: wrong, top-5 right. Row 3: right.
    assert e["protocol"] == "in-a-200"
    assert (e["metrics"]["n"], e["metrics"]["correct"]) == (3, 2)
    assert e["metrics"]["top5_accuracy"] == pytest.approx(1.0)
    assert e["metrics"]["accuracy_ci95"] == pytest.approx(list(wilson_interval(2, 3)))
    rows = {p["id"].rsplit("/", 1)[-1]: p for p in _preds(run, "imagenet-a")}
    assert rows["outside_first.png"]["top5"][0] == sd.A0 and rows["outside_first.png"]["correct"]
    # Probabilities are renormalised over the 200: A0 holds 0.4·0.2 of the mass, the other 199
    # of the 200 get 0.4·0.5/995 each (tench and the other three of the top-5 lie outside).
    space = set(labels.label_space_indices("in_a_200"))
    assert all(c in space for p in rows.values() for c in p["top5"])
    inside = 0.4 * 0.2 + 199 * 0.4 * 0.5 / 995
    assert rows["outside_first.png"]["top5_prob"][0] == pytest.approx(0.08 / inside, rel=1e-5)
    assert not rows["second.png"]["correct"] and rows["second.png"]["correct_top5"]


def test_real_leaves_out_empty_lists_and_ignores_the_union(tmp_path, isolated_home):
    sd.build_imagenet_val(isolated_home, tmp_path / "src")
    run = _run(tmp_path, isolated_home, ["imagenet", "imagenet-real"])
    real, val = run.result.entry("imagenet-real"), run.result.entry("imagenet")
    # ReaL: val 1 (empty list) is not scored; val 2 predicts 795 ∈ {970, 795} ✓; val 3 predicts
    # its ImageNet label 229, which is in the table's IN ∪ ReaL union but not in ReaL {230, 231} ✗.
    assert real["protocol"] == "real"
    assert (real["metrics"]["n"], real["metrics"]["correct"]) == (2, 1)
    assert real["dataset"]["rows"] == 2
    assert [p["id"].rsplit("/", 1)[-1] for p in _preds(run, "imagenet-real")] == [
        "ILSVRC2012_val_00000002.png", "ILSVRC2012_val_00000003.png"]
    # ImageNet val, same photos: 500 ✓, 795 vs 970 ✗ (top-5 ✓), 229 ✓.
    assert (val["protocol"], val["metrics"]["n"], val["metrics"]["correct"]) == ("in1k", 3, 2)
    assert val["metrics"]["top5_accuracy"] == pytest.approx(1.0)
    # Same images, same classes asked: ReaL reused ImageNet's predictions (3 rows, not 5).
    assert run.predicted == 3
    assert real["dataset"]["fingerprint"] != val["dataset"]["fingerprint"]


def test_objectnet_maps_predictions_and_crops_the_border(tmp_path, isolated_home):
    sd.build_objectnet(isolated_home, tmp_path / "src")
    run = _run(tmp_path, isolated_home, ["objectnet"])
    e = run.result.entry("objectnet")
    # Chair photo predicted "folding chair": one of Chair's three ImageNet classes ✓ (the mining
    # rule `paper` would mask folding chair out). Bicycle: goldfish lies outside the union of
    # mapped classes, so the top-1 within it is 444 (tandem), mapped to Bicycle ✓. Alarm clock
    # predicted banana ✗ (409 second: top-5 ✓). Banana with a red frame ✓ only because 2 px
    # were cropped off each side before the submission looked at it.
    assert e["protocol"] == "objectnet"
    assert (e["metrics"]["n"], e["metrics"]["correct"]) == (4, 3)
    assert e["metrics"]["top5_accuracy"] == pytest.approx(1.0)
    rows = {p["id"].rsplit("/", 1)[-1]: p for p in _preds(run, "objectnet")}
    assert rows["folding.png"]["top5"][0] == 559 and rows["folding.png"]["correct"]
    assert rows["goldfish.png"]["top5"][0] == 444 and rows["goldfish.png"]["correct"]
    assert rows["bordered.png"]["top5"][0] == 954 and rows["bordered.png"]["correct"]
    union = {409, 530, 954, 671, 444, 423, 559, 765}
    assert {c for p in rows.values() for c in p["top5"]} <= union


def test_imagenet_c_errors_means_and_mce(tmp_path, isolated_home):
    sd.write_imagenet_c(isolated_home)
    base = _run(tmp_path / "base", isolated_home, ["imagenet-c"], body=sd.ALWAYS_WRONG)
    # Errors: fog/1 1/2, fog/2 2/2, saturate/1 0/2. fog = (0.5 + 1) / 2 = 0.75 (benchmark);
    # saturate = 0 (held out). The baseline is wrong everywhere: CE_fog = (0.5 + 1.0) /
    # (1 + 1) = 0.75, and mCE = 0.75 (fog is the only benchmark corruption present).
    run = _run(tmp_path, isolated_home, ["imagenet-c"], baseline=base.path)
    c = run.result.imagenet_c
    assert c["errors"] == {"fog/1": 0.5, "fog/2": 1.0, "saturate/1": 0.0}
    assert c["per_corruption"] == {"fog": 0.75, "saturate": 0.0}
    assert c["mean_error_benchmark"] == pytest.approx(0.75)
    assert c["mean_error_held_out"] == pytest.approx(0.0)
    assert (c["benchmark_corruptions"], c["held_out_corruptions"], c["complete"]) == (1, 1, False)
    assert c["ce"] == {"fog": pytest.approx(0.75)} and c["mce"] == pytest.approx(0.75)
    assert c["baseline"]["name"] == "Always 999"
    alone = _run(tmp_path / "alone", isolated_home, ["imagenet-c/fog"])
    assert alone.result.imagenet_c["mce"] is None
    assert "unnormalised" in alone.result.summary()


def test_imagenet_c_summary_by_hand():
    # E_{s,c} = (k_c + s) / 100 for the k-th benchmark corruption; AlexNet 0.5 everywhere.
    # CE_c = Σ_s (k + s) / 100 / 2.5 = (5k + 15) / 250; mCE = mean over k = 0..14 = 50 / 250.
    errors = {(c, s): (k + s) / 100 for k, c in enumerate(IMAGENET_C_BENCHMARK) for s in SEVERITIES}
    errors.update({(c, s): 0.3 for c in IMAGENET_C_HELD_OUT for s in SEVERITIES})
    alex = {key: 0.5 for key in errors}
    out = imagenet_c_summary(errors, alex)
    assert out["complete"] and out["mce"] == pytest.approx(0.2)
    assert out["ce"]["gaussian_noise"] == pytest.approx(15 / 250)
    assert out["mean_error_benchmark"] == pytest.approx(np.mean([k + 3 for k in range(15)]) / 100)
    assert out["mean_error_held_out"] == pytest.approx(0.3)
    # A baseline missing a table scored here gives no mCE rather than a wrong one.
    del alex[("fog", 5)]
    assert imagenet_c_summary(errors, alex)["mce"] is None
    assert imagenet_c_summary(errors)["mce"] is None
    with pytest.raises(InvalidValueError, match="undefined"):
        imagenet_c_summary({("fog", 1): 0.2}, {("fog", 1): 0.0})


@pytest.mark.parametrize("source, protocol", [
    ("imagenet", "in1k"), ("imagenet-real", "real"), ("imagenet-a", "in-a-200"),
    ("imagenet-r", "in-r-200"), ("imagenet-sketch", "in1k"), ("imagenet-v2", "in1k"),
    ("objectnet", "objectnet"), ("sample", "in1k")])
def test_each_builder_declares_its_protocol(source, protocol):
    from imagenet_hard.sources import get_source

    builder = get_source(source)
    assert builder.protocol == protocol
    assert protocol_for(source.replace("-", "_"), builder.label_space, source).name == protocol
    assert PROTOCOLS.get(protocol).space == builder.label_space or protocol in ("real", "in1k")


def test_a_table_no_builder_made_is_scored_by_its_label_space():
    assert protocol_for("bench_0", "in1k", "bench").name == "in1k"
    assert protocol_for("bench-mine", "in_a_200", "bench").name == "in-a-200"
    assert protocol_for("sample", "in1k", "imagenet_c/fog/1").name == "imagenet-c"
    with pytest.raises(InvalidValueError, match="no scoring protocol"):
        protocol_for("bench_0", "made_up", "bench")


def test_corruption_names_are_checked():
    assert corruption_of("imagenet_c/zoom_blur/5") == ("zoom_blur", 5)
    for bad in ("imagenet_c/fog/6", "imagenet_c/../x/1", "imagenet/fog/1", "imagenet_c/fog"):
        with pytest.raises(InvalidValueError):
            corruption_of(bad)


def test_top5_within_classes_handles_logits_and_probabilities():
    logits = np.zeros((1, 1000))
    logits[0, [0, 6, 11]] = [50.0, 3.0, 2.0]
    top5, prob = top5_of(logits, classes=[6, 11, 13, 15, 17])
    assert top5[0].tolist() == [6, 11, 13, 15, 17]
    assert prob[0].sum() == pytest.approx(1.0, abs=1e-6)
    assert prob[0, 0] == pytest.approx(np.exp(3) / (np.exp(3) + np.exp(2) + 3), rel=1e-5)
    # Extreme logits outside the subset must not underflow it to nothing.
    logits[0, 0] = 2000.0
    assert top5_of(logits, classes=[6, 11, 13, 15, 17])[0][0, 0] == 6
    probs = np.zeros((1, 1000))
    probs[0, 0] = 1.0  # all mass outside the subset: uniform within it, lowest index first
    top5, prob = top5_of(probs, classes=[6, 11, 13, 15, 17])
    assert top5[0, 0] == 6 and prob[0, 0] == pytest.approx(0.2)
