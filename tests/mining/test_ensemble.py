"""Ensemble mining: the rules against a hand computation on injected verdicts, and early exit
against the exhaustive ensemble on real photos with two offline judges (EfficientNet-Lite0 at
fp32 and at bf16)."""

from __future__ import annotations

import itertools
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imagenet_hard.errors import InvalidValueError
from imagenet_hard.mining import ensemble
from imagenet_hard.mining.runs import RunRecord


def by_hand(verdicts, rule):
    """Candidate when the failing judges reach the rule's count, knowing every verdict."""
    fails = sum(v is False for v in verdicts)
    return {"all": fails == len(verdicts), "any": fails >= 1,
            "majority": fails > len(verdicts) / 2}[rule]


@pytest.mark.parametrize("rule", ensemble.RULES)
@pytest.mark.parametrize("k", [2, 3, 4])
def test_rules_match_a_hand_computation(rule, k):
    for verdicts in itertools.product([True, False], repeat=k):
        assert ensemble.decide(verdicts, rule) is by_hand(verdicts, rule)
        # known early: whatever the judges still to come say, the outcome is the same
        for cut in range(k + 1):
            partial = [*verdicts[:cut], *[None] * (k - cut)]
            early = ensemble.decide(partial, rule)
            rest = [by_hand([*verdicts[:cut], *tail], rule)
                    for tail in itertools.product([True, False], repeat=k - cut)]
            assert early is (rest[0] if len(set(rest)) == 1 else None)


def test_combined_row_takes_the_settling_judge():
    rows = [{"id": "x", "correct": v, "first_correct_crop": 7 if v else None, "n_forward": n,
             "best_crop": b, "top5": [b] * 5, "top5_prob": [0.2] * 5}
            for v, n, b in ((True, 3, 1), (False, 324, 2), (False, 324, 3))]
    verdicts = [True, False, False]
    img = type("Img", (), {"id": "x"})()
    row = ensemble._combined(img, rows, verdicts, "majority")
    assert (row["correct"], row["best_crop"], row["n_forward"]) == (False, 2, 651)
    assert row["first_correct_crop"] is None
    row = ensemble._combined(img, rows[:1] + [None, None], [True, None, None], "all")
    assert (row["correct"], row["first_correct_crop"], row["n_forward"]) == (True, 7, 3)


def test_judges_are_checked_without_torch():
    js = ensemble.parse_judges("efficientnet-lite0,efficientnet-lite0@bf16")
    assert [j.name for j in js] == ["efficientnet-lite0", "efficientnet-lite0@bf16"]
    with pytest.raises(InvalidValueError, match="at least two"):
        ensemble.parse_judges("efficientnet-lite0")
    with pytest.raises(InvalidValueError, match="twice"):
        ensemble.parse_judges("efficientnet-lite0@bf16,efficientnet-lite0@bf16")
    with pytest.raises(InvalidValueError, match="after @"):
        ensemble.parse_judges("efficientnet-lite0@fp8,efficientnet-lite0")
    with pytest.raises(InvalidValueError, match="rule must be"):
        ensemble.check_rule("most")


PHOTOS = ("horse.png", "coffee.png")  # one candidate, one settled at once by both judges
JUDGES = "efficientnet-lite0@fp32,efficientnet-lite0@bf16"


@pytest.fixture
def two_photos(sample_home, isolated_home):
    """The sample source cut to two photos (the horse is EfficientNet-Lite0's candidate)."""
    shutil.copytree(sample_home / "sources", isolated_home / "sources")
    path = isolated_home / "sources" / "sample.parquet"
    table = pq.read_table(path)
    keep = [i.rsplit("/", 1)[-1] in PHOTOS for i in table.column("id").to_pylist()]
    table = table.filter(pa.array(keep))
    assert table.num_rows == len(PHOTOS)
    pq.write_table(table, path)
    return isolated_home


@pytest.mark.slow
def test_early_exit_equals_the_exhaustive_ensemble_on_real_photos(two_photos):
    full = ensemble.mine_ensemble("sample", JUDGES, "all", exhaustive=True, run="full",
                                  device="cpu", workers=0)
    every = full.run.judge_verdicts().to_pylist()
    assert all(r["correct"] is not None for r in every)   # every judge judged every image
    per_image = {}
    for r in every:
        per_image.setdefault(r["id"], {})[r["judge"]] = r["correct"]
    for rule in ensemble.RULES:
        fast = ensemble.mine_ensemble("sample", JUDGES, rule, run=f"fast-{rule}", device="cpu",
                                      workers=0)
        expect = sorted(i for i, v in per_image.items() if by_hand(list(v.values()), rule))
        got = sorted(fast.run.candidates().column("id").to_pylist())
        print(f"\n{rule}: candidates {got}; images judged per judge {fast.judged}, crops "
              f"{fast.forward_passes}; exhaustive crops {full.forward_passes}")
        assert got == expect
        # the judges that ran agree with the exhaustive verdicts, image by image
        for r in fast.run.judge_verdicts().to_pylist():
            if r["correct"] is not None:
                assert r["correct"] == per_image[r["id"]][r["judge"]]
        assert sum(fast.forward_passes.values()) < sum(full.forward_passes.values())
        rec = fast.run.record
        assert rec.rule == rule and rec.precisions == ("fp32", "bf16") or \
            rec.precisions == ("bf16", "fp32")
        assert sorted(rec.judges) == ["efficientnet-lite0@bf16", "efficientnet-lite0@fp32"]
        assert RunRecord.from_json(rec.to_json(), fast.run.dir) == rec
    assert full.run.candidates().column("id").to_pylist() == [
        i for i in sorted(per_image) if by_hand(list(per_image[i].values()), "all")]


def test_order_is_cheapest_first_and_a_rerun_keeps_the_recorded_one(tmp_path, monkeypatch):
    cost = {"a@fp32": 2.0, "b@fp32": 1.0, "c@bf16": 3.0}
    names = list(cost)
    assert ensemble._order(names, cost, "measured", tmp_path / "none") == [1, 0, 2]
    assert ensemble._order(names, cost, "given", tmp_path / "none") == [0, 1, 2]
    recorded = type("Run", (), {"record": type("Rec", (), {"judges": ("c@bf16", "a@fp32",
                                                                       "b@fp32")})()})()
    monkeypatch.setattr(ensemble, "open_run", lambda folder: recorded)
    assert ensemble._order(names, cost, "measured", tmp_path / "r") == [2, 0, 1]


class AlwaysRight:
    """Top-1 the label of every synthetic image (class 1) on every crop: one crop an image."""

    amp_dtype = weights_dtype = None

    def __init__(self, name):
        import torch

        self.name, self.device = name, torch.device("cpu")

    def __call__(self, crops):
        import torch

        out = torch.zeros((len(crops), 1000))
        out[:, 1] = 1.0
        return out


def test_a_small_dev_shm_sends_an_ensembles_crops_through_pipes(tmp_path, monkeypatch, capfd):
    """As `mine` does (tests/test_devices.py): the loader workers keep running, their tensors go
    through pipes, where the ensemble used to be refused by the engine's own check."""
    import os
    from multiprocessing.reduction import ForkingPickler

    from mining_support import SynthImage, make_source

    from imagenet_hard import devices
    from imagenet_hard.mining import run as mining_run

    make_source(tmp_path, "synth", [SynthImage(f"{k}.png", (64, 48), (1,), k) for k in range(2)])
    real = os.statvfs
    free = type("SmallShm", (), {"f_bavail": 16, "f_frsize": 4 << 20})   # 64 MiB
    monkeypatch.setattr(os, "statvfs", lambda p: free() if p == devices.SHM else real(p))
    monkeypatch.setattr(ForkingPickler, "_extra_reducers", dict(ForkingPickler._extra_reducers))
    monkeypatch.setitem(devices._TRANSPORT, "tensors", "shared memory")
    monkeypatch.setattr(mining_run, "build_judge", lambda spec, dev, proto: AlwaysRight(spec))
    monkeypatch.setattr(ensemble, "seconds_per_crop", lambda judge, dev: 1.0)
    out = ensemble.mine_ensemble("synth", "efficientnet-lite0,efficientnet-lite0@bf16", "all",
                                 home=tmp_path, device="cpu", workers=2, run="shm")
    assert out.run.finished and out.run.candidates().num_rows == 0
    # each image right at its first crop: the second judge has nothing left to judge
    assert out.forward_passes == {"efficientnet-lite0@fp32": 2, "efficientnet-lite0@bf16": 0}
    assert devices.tensor_transport().startswith("pipes")
    assert "through pipes" in capfd.readouterr().err
