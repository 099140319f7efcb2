"""`imhard analyze heldout`: held-out models on a run's candidates and on a sample of the rest.

The report's numbers are checked against an independent scoring: EfficientNet-Lite0 built by
``create_model`` and run through its own torchvision transform on the same photos, accuracy
counted by hand."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from run_support import write_run

from imagenet_hard.analysis import heldout
from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError
from imagenet_hard.mining import open_run

#: Sample photos the fake run calls candidates (its "judge" is a model that is not here).
CANDIDATES = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png")


@pytest.fixture
def run(sample_home, isolated_home):
    import shutil

    shutil.copytree(sample_home / "sources", isolated_home / "sources")
    ids = [r["id"] for r in pq.read_table(isolated_home / "sources" / "sample.parquet").to_pylist()]
    cands = {i: {"top5": [1, 2, 3, 4, 5], "top5_prob": [0.5, 0.2, 0.1, 0.1, 0.1], "best_crop": 4}
             for i in ids if i.rsplit("/", 1)[-1] in CANDIDATES}
    assert len(cands) == len(CANDIDATES)
    return write_run(isolated_home, "r", ["sample"], cands, judge="timm:resnet50")


def hand_scored(home, ids: list[str]) -> dict[str, bool]:
    """Top-1 of EfficientNet-Lite0 through its own preprocessing, judged against the label."""
    import torch
    from PIL import Image

    from imagenet_hard.models import create_model

    rows = {r["id"]: r for r in pq.read_table(home / "sources" / "sample.parquet").to_pylist()}
    model = create_model("efficientnet-lite0", device="cpu")
    out = {}
    for i in ids:
        with Image.open(home / rows[i]["path"]) as im:
            x = model.transform(im.convert("RGB"))[None]
        with torch.inference_mode():
            top1 = int(model.module(x).argmax(1))
        out[i] = top1 in rows[i]["label"]
    return out


def test_report_numbers_equal_an_independent_scoring(run, isolated_home):
    report = heldout.heldout_check("r", "efficientnet-lite0", seed=3)
    (m,) = report.models
    preds = pq.read_table(heldout.report_dir(run) / heldout.PREDICTIONS).to_pylist()
    groups = {g: [p["id"] for p in preds if p["group"] == g] for g in heldout.GROUPS}
    cand_ids = set(open_run("r").candidates().column("id").to_pylist())
    assert set(groups["candidates"]) == cand_ids
    assert len(groups["others"]) == len(cand_ids) and not set(groups["others"]) & cand_ids
    by_hand = hand_scored(isolated_home, groups["candidates"] + groups["others"])
    for group, acc in (("candidates", m.candidates), ("others", m.others)):
        k = sum(by_hand[i] for i in groups[group])
        n = len(groups[group])
        print(f"{group}: report {acc.correct}/{acc.n}, by hand {k}/{n}")
        assert (acc.correct, acc.n) == (k, n)
        assert (acc.low, acc.high) == pytest.approx(heldout.interval(k, n))
        assert acc.low <= acc.accuracy <= acc.high
    # the files: JSON round trip, markdown table, a PNG, and the same draw under the same seed
    data = json.loads((heldout.report_dir(run) / heldout.REPORT_JSON).read_text())
    assert heldout.HeldOutReport.from_json(data, heldout.report_dir(run)) == report
    assert "| efficientnet-lite0 | fp32 |" in (heldout.report_dir(run) / heldout.REPORT_MD).read_text()
    assert (heldout.report_dir(run) / heldout.PLOT).read_bytes()[:4] == b"\x89PNG"
    again = heldout.heldout_check("r", "efficientnet-lite0", seed=3)
    assert again == report


def test_a_judge_is_not_held_out_unless_at_another_precision(run):
    with pytest.raises(InvalidValueError, match="judged this run, so it is not held out"):
        heldout.check_held_out(["timm:resnet50"], "fp32", run.record)
    assert heldout.check_held_out(["timm:resnet50", "efficientnet-lite0"], "bf16",
                                  run.record) == [True, False]
    with pytest.raises(InvalidValueError, match="twice"):
        heldout.parse_models("efficientnet-lite0,efficientnet-lite0")


def test_intervals_against_scipy_and_the_textbook():
    from scipy.stats import binomtest

    lo, hi = heldout.interval(3, 10, "exact")
    ci = binomtest(3, 10).proportion_ci(method="exact")
    assert (lo, hi) == pytest.approx((ci.low, ci.high))
    # Wilson at 95%: 3 of 10 gives (0.1078, 0.6032) (Newcombe 1998, table I style)
    assert heldout.interval(3, 10, "wilson") == pytest.approx((0.1078, 0.6032), abs=1e-4)
    assert heldout.interval(0, 0) == (0.0, 1.0)
    with pytest.raises(InvalidValueError, match="interval must be one of"):
        heldout.interval(1, 2, "normal")


def test_cli_heldout_prints_and_refuses_a_judge(run, isolated_home):
    res = CliRunner().invoke(main, ["analyze", "heldout", "--run", "r", "--models",
                                    "efficientnet-lite0", "--limit", "2", "--interval", "exact"])
    assert res.exit_code == 0, res.output
    assert "candidates 2 of" not in res.output and "efficientnet-lite0 fp32" in res.output
    report = heldout.read_report(run)
    assert report.models[0].candidates.n == 2 and report.candidates_total == 4
    assert report.interval == "exact"
    res = CliRunner().invoke(main, ["analyze", "heldout", "--run", "r", "--models",
                                    "timm:resnet50"])
    assert res.exit_code == 1 and "not held out" in res.stderr
    # the zoom analysis is still the default
    res = CliRunner().invoke(main, ["analyze", "r"])
    assert res.exit_code == 1 and "exhaustive" in res.stderr


def test_the_card_carries_the_held_out_table(run, tmp_path):
    from imagenet_hard.publish.folder import publish

    acc = heldout.Accuracy(4, 1, *heldout.interval(1, 4))
    report = heldout.HeldOutReport(
        run="r", judge="timm:resnet50", judge_precision="fp32", candidates_total=4,
        others_total=5, seed=0, interval="wilson", confidence=0.95,
        models=(heldout.ModelResult("a|b", "fp32", False, acc, heldout.Accuracy(4, 4, 0.5, 1.0)),))
    card = tmp_path / "plain" / "README.md"
    publish("r", None, card.parent, include_pending=True)
    assert "Held-out check" not in card.read_text()
    heldout.write_report(run, report, [])
    publish("r", None, tmp_path / "with", include_pending=True)
    text = (tmp_path / "with" / "README.md").read_text()
    assert "Held-out check" in text and "| a\\|b | fp32 | 25.0% [" in text and "+75.0 |" in text
