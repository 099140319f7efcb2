"""Mining: verdicts within label spaces, early exit = exhaustive, resume, torchrun, a real judge."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from mining_support import (
    RIGHT,
    RIGHT_MASKED,
    WRONG_MASKED,
    ControlledJudge,
    CropIndex,
    Plan,
    SynthImage,
    make_source,
)
from PIL import Image

from imagenet_hard import build_source, labels, zoom
from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError, MissingFileError
from imagenet_hard.mining import mine, open_run, order
from imagenet_hard.mining.engine import judge_verdicts
from imagenet_hard.mining.plan import load_workload
from imagenet_hard.mining.runs import META_SHARD, OriginCounts
from imagenet_hard.records import CANDIDATE_SCHEMA, SourceRow, read_table, write_source_table

IN_A = labels.label_space_indices("in_a_200")
ON_113 = list(range(0, 1000, 8))[:113]


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """Three synthetic sources (in1k, in_a_200, objectnet_113), six images, planned answers."""
    home = tmp_path_factory.mktemp("synth_home")
    rows = []
    rows += make_source(home, "synth_in", [
        SynthImage("n01/a.png", (48, 36), (1, 2), 1),
        SynthImage("n01/b.png", (36, 48), (3,), 2),
    ])
    rows += make_source(home, "synth_a", [
        SynthImage("c.png", (40, 40), (IN_A[0],), 3),
        SynthImage("d.png", (30, 45), (IN_A[1],), 4),
    ], label_space="in_a_200")
    rows += make_source(home, "synth_on", [
        SynthImage("e.png", (50, 30), (ON_113[3], ON_113[4]), 5, paper=(ON_113[4],)),
        SynthImage("f.png", (8, 5), (ON_113[5],), 6, paper=(ON_113[5],)),
    ], label_space="objectnet_113",
        extra_spaces={"objectnet_113": ON_113, "objectnet_113_paper": ON_113})
    index = CropIndex()
    for row in rows:
        index.add(home, row)
    full = tuple(range(1000))
    plans = {
        # multi-label: right (on its second label) only at one late crop
        "synth_in/n01/a.png": Plan((1, 2), full, {order.crop_order()[20]: RIGHT, 200: RIGHT}),
        "synth_in/n01/b.png": Plan((3,), full, confident_crop=37),
        # IN-A: the top-1 over 1000 classes is outside the 200; within them it is the label
        "synth_a/c.png": Plan((IN_A[0],), IN_A, {order.crop_order()[0]: RIGHT_MASKED},
                              default=WRONG_MASKED),
        "synth_a/d.png": Plan((IN_A[1],), IN_A, default=WRONG_MASKED, confident_crop=150),
        "synth_on/e.png": Plan((ON_113[3], ON_113[4]), tuple(ON_113), {5: RIGHT_MASKED},
                               default=WRONG_MASKED),
        "synth_on/f.png": Plan((ON_113[5],), tuple(ON_113), default=WRONG_MASKED,
                               confident_crop=300),
    }
    return {"home": home, "index": index, "plans": plans,
            "sources": ["synth_in", "synth_a", "synth_on"]}


CANDIDATES = {"synth_in/n01/b.png", "synth_a/d.png", "synth_on/f.png"}
FIRST_CORRECT = {"synth_in/n01/a.png": order.crop_order()[20], "synth_a/c.png": order.crop_order()[0],
                 "synth_on/e.png": 5}


def _early_exit_cost(crop: int) -> int:
    """Forward passes an image settled by ``crop`` costs: every crop up to the end of its round."""
    rank = order.crop_rank()[crop]
    return int(next(c for c in np.cumsum(order.ROUND_SIZES) if c > rank))


@pytest.fixture(scope="session")
def mined(synth):
    """The same sources mined with early exit and exhaustively (session-shared, read-only)."""
    out = {}
    for exhaustive in (False, True):
        judge = ControlledJudge(synth["index"], synth["plans"])
        res = mine(synth["sources"], judge, home=synth["home"], exhaustive=exhaustive,
                   device="cpu", batch_size=16, shard_size=4, workers=0 if exhaustive else 1)
        out[exhaustive] = (res, res.results().to_pylist(), judge)
    return out


def test_verdict_is_top1_within_the_label_space():
    spaces = torch.zeros((2, 1000), dtype=torch.bool)
    spaces[0] = True
    spaces[1, list(IN_A)] = True
    outside = next(c for c in range(1000) if c not in set(IN_A))
    logits = torch.zeros((4, 1000))
    logits[:, outside] = 9.0                       # best over all 1000 classes, outside IN-A
    logits[0, IN_A[5]] = 5.0                       # IN-A image: label wins within the space
    logits[1, IN_A[5]] = 5.0                       # the same crop judged in all 1000 classes
    logits[2, IN_A[6]], logits[2, IN_A[5]] = 6.0, 5.0   # a wrong class wins within the space
    logits[3, 7] = 5.0                             # multi-label {outside, 7}: top-1 is a label
    hot = torch.zeros((4, 1000), dtype=torch.bool)
    hot[0:3, IN_A[5]] = True
    hot[3, [outside, 7]] = True
    correct, conf, top5, _ = judge_verdicts(logits, torch.tensor([1, 0, 1, 0]), spaces, hot)
    assert correct.tolist() == [True, False, False, True]
    assert top5[0, 0] == IN_A[5] and outside not in top5[0].tolist()
    assert top5[1, 0] == outside
    assert 0.0 < conf[0] <= 1.0


def test_label_spaces_come_from_the_row_and_objectnet_from_table_metadata(synth, tmp_path):
    work = load_workload(synth["sources"], synth["home"], objectnet_labels="all-mapped")
    assert work.spaces["objectnet_113"] == tuple(ON_113)
    assert work.spaces["in_a_200"] == IN_A and len(work.spaces["in1k"]) == 1000
    assert [r.id for r in work.images] == sorted(r.id for r in work.images)
    paper = load_workload(synth["sources"], synth["home"])  # the default rule: the authors'
    assert "objectnet_113" not in paper.spaces and paper.spaces["objectnet_113_paper"] == tuple(ON_113)
    e = next(r for r in paper.images if r.id == "synth_on/e.png")
    assert (e.label, e.judged_label) == ((ON_113[3], ON_113[4]), (ON_113[4],))
    # an ObjectNet table built without its class list cannot be judged: say how to fix it
    make_source(tmp_path, "bad_on", [SynthImage("x.png", (9, 9), (ON_113[0],), 7)],
                label_space="objectnet_113")
    with pytest.raises(InvalidValueError, match="rebuild the objectnet source"):
        load_workload(["bad_on"], tmp_path, objectnet_labels="all-mapped")


def test_candidates_are_images_no_crop_gets_right(synth, mined):
    res, rows, _ = mined[False]
    cand = res.candidates()
    assert cand.schema.remove_metadata().equals(CANDIDATE_SCHEMA)
    by_id = {r["id"]: r for r in cand.to_pylist()}
    assert set(by_id) == CANDIDATES
    for cid, row in by_id.items():
        plan = synth["plans"][cid]
        # top-5 on the most confident crop, within the image's label space
        assert row["best_crop"] == plan.confident_crop
        assert row["top5"][0] == plan.confident_class()
        assert set(row["top5"]) <= set(plan.space)
        assert row["top5_prob"] == sorted(row["top5_prob"], reverse=True)
    assert by_id["synth_a/d.png"]["label_space"] == "in_a_200"
    assert by_id["synth_on/f.png"]["source"] == "synth_on"
    results = {r["id"]: r for r in rows}
    for rid, crop in FIRST_CORRECT.items():
        assert results[rid]["correct"] and results[rid]["first_correct_crop"] == crop


def test_early_exit_equals_exhaustive_with_far_fewer_forward_passes(synth, mined):
    (early, early_rows, early_judge), (full, full_rows, full_judge) = mined[False], mined[True]
    assert early.name != full.name
    key = ("id", "correct", "first_correct_crop")
    assert [[r[k] for k in key] for r in early_rows] == [[r[k] for k in key] for r in full_rows]
    assert early.candidates().to_pylist() == full.candidates().to_pylist()
    # exhaustive: every crop judged once (and the standard 1-crop), the mask is exactly the plan
    assert len(full_judge.seen) == 6 * 325
    assert set(full_judge.seen) >= {(r["id"], c) for r in full_rows for c in range(324)}
    for r in full_rows:
        plan = synth["plans"][r["id"]]
        expect = [plan.kind(c) in (RIGHT, RIGHT_MASKED) for c in range(324)]
        assert r["mask"] == expect and r["n_correct"] == sum(expect) and r["n_forward"] == 325
        assert r["one_crop_correct"] is False
    # early exit: a settled image pays only up to the end of the round that settled it
    for r in early_rows:
        want = _early_exit_cost(r["first_correct_crop"]) if r["correct"] else 324
        assert r["n_forward"] == want and r["mask"] is None and r["one_crop_correct"] is None
    assert {r["id"]: r["n_forward"] for r in early_rows}["synth_a/c.png"] == 1
    total = sum(r["n_forward"] for r in early_rows)
    assert len(early_judge.seen) == early.summary.forward_passes == total == 3 * 324 + 1 + 36 + 324
    s = early.summary
    assert (s.images, s.candidates, s.mode, s.exhaustive) == (6, 3, "early-exit", False)
    assert s.per_origin["synth_a"] == OriginCounts(images=2, candidates=1)
    assert full.summary.forward_passes_per_image == 325.0 and full.summary.exhaustive


def test_masks_are_queryable_with_duckdb(mined):
    res, _, _ = mined[True]
    shards = res.shards_dir / "*.parquet"
    got = duckdb.sql(f"select id, list_sum(mask::INTEGER[]), mask[200 + 1] from "
                     f"read_parquet('{shards}') where id = 'synth_in/n01/a.png'").fetchall()
    assert got == [("synth_in/n01/a.png", 2, True)]


def test_killed_run_resumes_without_redoing_finished_shards(synth, mined):
    kw = dict(home=synth["home"], device="cpu", batch_size=16, shard_size=2, run="resume",
              workers=0)
    # shards (sorted ids): [synth_a/c, synth_a/d] [synth_in/a, synth_in/b] [synth_on/e, synth_on/f]
    crash = ControlledJudge(synth["index"], synth["plans"], fail_on={"synth_on/e.png"})
    with pytest.raises(RuntimeError, match="simulated crash"):
        mine(synth["sources"], crash, **kw)
    killed = open_run("resume", synth["home"])
    assert killed.missing_shards() == [2] and not killed.finished
    with pytest.raises(MissingFileError, match="has not finished"):
        killed.candidates()
    again = ControlledJudge(synth["index"], synth["plans"])
    res = mine(synth["sources"], again, **kw)
    assert {i for i, _ in again.seen} == {"synth_on/e.png", "synth_on/f.png"}
    assert res.candidates().to_pylist() == mined[False][0].candidates().to_pylist()
    assert res.summary.resumed_images == 4 and res.summary.computed_images == 2
    # a finished run reruns as a no-op: the judge is never called
    idle = ControlledJudge(synth["index"], synth["plans"], fail_on=set(synth["plans"]))
    assert mine(synth["sources"], idle, **kw).summary.candidates == 3
    with pytest.raises(InvalidValueError, match="exhaustive"):
        mine(synth["sources"], again, exhaustive=True, **kw)


def test_missing_source_and_bad_sizes_say_what_to_do(tmp_path):
    # the judge spec is checked first (no model is built: the source is missing)
    with pytest.raises(MissingFileError, match="imhard build --source nope"):
        mine(["nope"], "efficientnet-lite0", home=tmp_path, device="cpu")
    with pytest.raises(InvalidValueError, match="--shard-size"):
        mine(["nope"], "controlled", home=tmp_path, device="cpu", shard_size=0)


def _subset_source(home, name: str, ids: list[str]) -> None:
    """A source table holding some rows of the built sample source (same image files)."""
    table = read_table(home / "sources" / "sample.parquet")
    rows = [SourceRow(**r) for r in table.to_pylist() if r["id"] in ids]
    write_source_table(rows, home / "sources" / f"{name}.parquet", name)


def test_cli_mines_with_a_registered_judge_and_prints_a_summary(synth, request):
    from imagenet_hard.judges import JUDGES, register_judge

    if "test-controlled" not in JUDGES:
        register_judge("test-controlled")(
            lambda device=None, **kw: ControlledJudge(synth["index"], synth["plans"]))
        # Gone afterwards: a later test in this process lists the registered judges.
        request.addfinalizer(lambda: JUDGES._items.pop("test-controlled", None))
    args = ["mine", "--source", "synth_a,synth_on", "--judge", "test-controlled", "--device",
            "cpu", "--batch-size", "8", "--home", str(synth["home"])]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "2 candidates of 4 images" in res.output
    assert "synth_a: 1 / 2" in res.output
    run = open_run("test-controlled__synth_a+synth_on", synth["home"])
    assert run.record.judge == "test-controlled" and run.record.sources == ("synth_a", "synth_on")
    bad = CliRunner().invoke(main, [*args[:2], "synth_a,missing", *args[3:]])
    assert bad.exit_code == 1 and "imhard build --source missing" in bad.output
    assert "Traceback" not in bad.output


SAMPLE_ARGS = ["--judge", "efficientnet-lite0", "--device", "cpu", "--shard-size", "1",
               "--batch-size", "32", "--workers", "0"]


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The sample source mined by the real EfficientNet-Lite0 through the CLI, run ``one``."""
    home = tmp_path_factory.mktemp("sample_mining")
    build_source("sample", home=home)
    res = CliRunner().invoke(main, ["mine", "--source", "sample", *SAMPLE_ARGS, "--run", "one",
                                    "--home", str(home)])
    assert res.exit_code == 0, res.output
    return home, res.output


@pytest.mark.slow
def test_efficientnet_lite0_mines_the_sample_source(sample_run):
    home, output = sample_run
    assert "efficientnet-lite0 on sample (early-exit)" in output
    run = open_run("one", home)
    summary = run.summary
    rows = {r["id"]: r for r in run.results().to_pylist()}
    assert len(rows) == 9 and summary.images == 9
    # On chelsea the model says tabby cat, on coffee espresso: the standard crop settles
    for rid in ("sample/n02123045/chelsea.png", "sample/n07920052/coffee.png"):
        assert rows[rid]["correct"] and rows[rid]["n_forward"] == 1
        assert rows[rid]["first_correct_crop"] == order.crop_order()[0]
    cand = run.candidates().to_pylist()
    assert {c["id"] for c in cand} == {r for r, v in rows.items() if not v["correct"]}
    assert all(rows[c["id"]]["n_forward"] == 324 and len(c["top5"]) == 5 for c in cand)
    assert summary.forward_passes == sum(r["n_forward"] for r in rows.values()) < 9 * 324
    assert summary.candidates == len(cand)


@pytest.mark.slow
def test_two_process_torchrun_equals_one_process(sample_run):
    home, _ = sample_run
    ids = ["sample/n02123045/chelsea.png", "sample/n03763968/grace_hopper.jpg",
           "sample/n04266014/astronaut.png"]
    _subset_source(home, "sample3", ids)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # one image per shard: each shard's batches are the same whichever process judges it
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-port", str(_free_port()), "-m", "imagenet_hard", "mine", "--source", "sample3",
         *SAMPLE_ARGS, "--run-name", "two", "--home", str(home)],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("candidates of 3 images") == 1  # only rank 0 prints
    run = open_run("two", home)
    metas = [json.loads(pq.read_schema(run.shard_path(k)).metadata[META_SHARD])
             for k in range(run.record.shards)]
    # shards go to whichever rank is free (jobs.handout): each exactly once, by either rank
    assert sorted(m["shard"] for m in metas) == [0, 1, 2]
    assert {m["rank"] for m in metas} <= {0, 1}
    one = {r["id"]: r for r in open_run("one", home).results().to_pylist()}
    two = run.results().to_pylist()
    assert [r["id"] for r in two] == sorted(ids)
    for row in two:
        assert row["source"] == "sample3"
        want = {**one[row["id"]], "source": "sample3"}
        # probabilities may differ in the last float bits (OMP_NUM_THREADS=1 under torchrun)
        assert np.allclose(row.pop("top5_prob"), want.pop("top5_prob"), rtol=1e-4)
        assert row == want
    assert run.summary.world_size == 2 and run.summary.computed_images == 3


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_bad_judge_spec_leaves_no_run_behind(synth):
    from imagenet_hard.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="no-such-judge"):
        mine(["synth_a"], "no-such-judge", home=synth["home"], device="cpu")
    assert not (synth["home"] / "mining" / "no-such-judge__synth_a").exists()


class NearestCropJudge(ControlledJudge):
    """A :class:`ControlledJudge` that knows a crop by its pixels to within a grey level or two:
    the torch backend's crops are close to, not equal to, the PIL crops the index was made of.
    Each crop is matched to the nearest PIL crop (means over 16×16 blocks) and must be far nearer
    to it than to any other, else the judge fails."""

    def __init__(self, home, rows, plans, name):
        super().__init__(CropIndex(), plans)
        self.name = name
        sigs, self.keys = [], []
        for row in rows:
            with Image.open(home / row["path"]) as im:
                crops = zoom.zoom_crops(im)
            sigs.append(self.signature(crops))
            self.keys += [(row["id"], idx) for idx in range(len(crops))]
        self.sigs = torch.cat(sigs)

    @staticmethod
    def signature(crops: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(crops.float(), 16).flatten(1)

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        assert crops.dtype == torch.uint8 and tuple(crops.shape[1:]) == (3, 224, 224)
        dist = torch.cdist(self.signature(crops), self.sigs)
        near = dist.topk(2, largest=False)
        rows = []
        for (d0, d1), k in zip(near.values.tolist(), near.indices[:, 0].tolist(), strict=True):
            assert d0 < 8 and d1 > 20, f"crop not identifiable: nearest {d0:.1f}, next {d1:.1f}"
            image_id, idx = self.keys[k]
            self.seen.append((image_id, idx))
            rows.append(self.plans[image_id].logits(idx))
        return torch.stack(rows)


def test_small_dev_shm_mines_through_pipes_and_records_it(synth, monkeypatch, capsys):
    """A container's 64 MiB /dev/shm: the loader workers hand their crops over through pipes
    (one line on stderr, each shard's meta says so) instead of dying mid-run or refusing."""
    from multiprocessing.reduction import ForkingPickler

    from imagenet_hard import devices
    from imagenet_hard.judges import ScriptedJudge

    class Small:
        f_bavail, f_frsize = 16, 4 * 1024 * 1024

    real = os.statvfs
    monkeypatch.setattr(os, "statvfs", lambda p: Small() if p == devices.SHM else real(p))
    monkeypatch.setattr(ForkingPickler, "_extra_reducers", dict(ForkingPickler._extra_reducers))
    monkeypatch.setitem(devices._TRANSPORT, "tensors", "shared memory")
    right = ScriptedJudge(lambda crops: torch.full((crops.shape[0],), IN_A[0]), name="right-c")
    res = mine(["synth_a"], right, home=synth["home"], run="small-shm", device="cpu",
               workers=2, batch_size=100)
    assert res.summary.images == 2 and res.summary.candidates == 1  # d.png is never right
    meta = json.loads(pq.read_schema(res.shard_path(0)).metadata[META_SHARD])
    assert meta["loader_tensors"].startswith("pipes")
    err = [line for line in capsys.readouterr().err.splitlines() if "/dev/shm" in line]
    assert len(err) == 1 and "64 MiB free" in err[0]


@pytest.mark.slow
def test_torch_crop_backend_runs_the_same_loop(synth):
    from imagenet_hard.judges import ScriptedJudge

    never = ScriptedJudge(lambda crops: torch.full((crops.shape[0],), IN_A[5]), name="never-right")
    res = mine(["synth_a"], never, home=synth["home"], device="cpu", crops="torch", workers=0,
               batch_size=100)
    assert res.summary.crops_backend == "torch"
    assert res.summary.candidates == 2 and res.summary.forward_passes == 2 * 324
    # A judge whose verdicts depend on the crops' pixels: c.png is right on one late crop only,
    # d.png never, and most confident on crop 150. Both backends must find the same.
    settles = order.crop_order()[40]
    plans = {"synth_a/c.png": Plan((IN_A[0],), IN_A, {settles: RIGHT_MASKED},
                                   default=WRONG_MASKED),
             "synth_a/d.png": Plan((IN_A[1],), IN_A, default=WRONG_MASKED, confident_crop=150)}
    rows = read_table(synth["home"] / "sources" / "synth_a.parquet").to_pylist()
    got = {}
    for backend in ("pil", "torch"):
        judge = NearestCropJudge(synth["home"], rows, plans, f"nearest-{backend}")
        res = mine(["synth_a"], judge, home=synth["home"], device="cpu", crops=backend,
                   workers=0, batch_size=100)
        assert res.summary.crops_backend == backend
        assert res.summary.candidates == 1
        assert res.summary.forward_passes == _early_exit_cost(settles) + 324
        (cand,) = res.candidates().to_pylist()
        assert cand["id"] == "synth_a/d.png" and cand["best_crop"] == 150
        assert cand["top5"][0] == plans["synth_a/d.png"].confident_class()
        seen_c = {i for d, i in judge.seen if d == "synth_a/c.png"}
        assert settles in seen_c and len(seen_c) == _early_exit_cost(settles)
        got[backend] = (res.results().to_pylist(), judge.seen)
    (pil, pil_seen), (torch_, torch_seen) = got["pil"], got["torch"]
    assert torch_seen == pil_seen  # the same crops, in the same order
    assert len(torch_) == len(pil) == 2
    for a, b in zip(torch_, pil, strict=True):  # every image's verdict row
        assert np.allclose(a.pop("top5_prob"), b.pop("top5_prob"), rtol=1e-4)
        assert a == b


@pytest.mark.slow
def test_bench_mine_reference_and_engine_agree(synth):
    from imagenet_hard.bench import format_report
    from imagenet_hard.bench.mine import bench_mine

    judge = ControlledJudge(synth["index"], synth["plans"])
    report = bench_mine(judge, images=2, source="synth_a", home=synth["home"], device="cpu",
                        workers=0, echo=lambda m: None)
    # the reference's float crops, back in uint8, are the engine's crops: the judge knew them all
    assert report.results["reference and engine agree on candidates"] is True
    assert report.results["candidates"] == 1 and report.config["images"] == 2
    assert report.ours.items == report.reference.items == 2
    assert report.results["early exit forward passes per image (of 324)"] == (1 + 324) / 2
    assert report.ratio == report.ours.rate / report.reference.rate > 0
    text = format_report(report)
    assert "x the reference" in text and "images/s" in text


def test_limit_mines_the_first_images_by_id_and_a_resume_must_match(synth, mined):
    """`--limit N`: the first N ids of the sources, the same rows the whole run gives them; a
    rerun with another N is refused (the run pins its ids), a bad N before anything is read."""
    kw = dict(home=synth["home"], device="cpu", batch_size=16, workers=0, run="limited")
    judge = ControlledJudge(synth["index"], synth["plans"])
    res = mine(synth["sources"], judge, limit=3, **kw)
    ids = sorted(synth["plans"])[:3]
    assert {i for i, _ in judge.seen} == set(ids) and res.summary.images == 3
    whole = {r["id"]: r for r in mined[False][1]}
    assert res.results().to_pylist() == [whole[i] for i in ids]
    with pytest.raises(InvalidValueError, match="images: .* 3, asked 2"):
        mine(synth["sources"], judge, limit=2, **kw)
    for bad in (0, -1, True):
        with pytest.raises(InvalidValueError, match="limit must be a positive"):
            mine(synth["sources"], judge, limit=bad, **{**kw, "run": "bad"})
    assert not (synth["home"] / "mining" / "bad").exists()
