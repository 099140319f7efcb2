"""``imhard score --suite`` under torchrun: the sets spread over ranks by rows, sets sharing a
cache on one rank, one child per rank, and rank 0 writing the result once every rank reported.
A fake store and fake children stand in for torchrun and the sandbox."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
from jobs_support import FakeStore

from imagenet_hard import jobs
from imagenet_hard.score import harness, ranks


def test_sets_are_split_by_rows_largest_first():
    assert ranks.split_by_rows([100, 5, 50, 50, 5], 2) == [[0, 1], [2, 3, 4]]
    assert ranks.split_by_rows([3, 3, 3], 4) == [[0], [1], [2], []]
    assert ranks.split_by_rows([7], 1) == [[0]]



@pytest.fixture
def two_ranks(tmp_path, monkeypatch):
    """A 2-rank torchrun seen from one process: ``rank[0]`` says which rank runs next."""
    store, rank, calls = FakeStore(), [1], {"children": [], "whole": 0}
    sets = [SimpleNamespace(name=n, scored=list(range(rows)))
            for n, rows in (("imagenet-a", 7), ("imagenet-real", 4), ("imagenet", 4),
                            ("objectnet", 2))]
    shared = {"imagenet-real": "val", "imagenet": "val"}  # ReaL and val share one cache

    def predict(sub, asks, opts, tta=None, named=True):
        calls["children"].append((rank[0], [a.set.name for a in asks]))
        return SimpleNamespace(predicted=sum(len(a.indices) for a in asks), metadata={})

    def whole(*args, **kw):
        calls["whole"] += 1
        return harness.ScoreRun(result=None, path=tmp_path / "r.json", predicted=0, scored=17)

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(jobs, "setup", lambda device, cpu_only=False: (jobs.Ranks(rank[0], 2),
                                                                       "cpu"))
    monkeypatch.setattr(jobs, "_store", lambda: store)
    monkeypatch.setattr(jobs, "_FINISHES", itertools.repeat(0))
    monkeypatch.setattr(harness, "resolve_sets", lambda *a: sets)
    monkeypatch.setattr(harness, "cache_dir",
                        lambda home, sha, s, tta=None: tmp_path / shared.get(s.name, s.name))
    monkeypatch.setattr(harness, "predict", predict)
    monkeypatch.setattr(harness, "run_metadata", lambda report, caches: {})
    monkeypatch.setattr(harness, "score_suite", whole)
    sub = tmp_path / "sub.py"
    sub.write_text("")
    return SimpleNamespace(rank=rank, calls=calls, sub=sub)


def test_each_rank_scores_its_sets_and_rank_zero_writes_the_result(two_ranks):
    opts = harness.RunOptions(device="cpu", sandbox="none")
    assert ranks.score_suite(two_ranks.sub, options=opts) is None  # rank 1 leaves at once
    assert two_ranks.calls["whole"] == 0
    two_ranks.rank[0] = 0
    run = ranks.score_suite(two_ranks.sub, options=opts)
    # rows: imagenet-a 7 | the shared val cache 4 + 4 | objectnet 2
    assert two_ranks.calls["children"] == [(1, ["imagenet-a", "objectnet"]),
                                           (0, ["imagenet-real", "imagenet"])]
    assert two_ranks.calls["whole"] == 1 and run.predicted == 17 and run.resumed_rows == 0


def test_rank_zero_reads_the_sets_once_and_hands_them_to_the_result(two_ranks, monkeypatch):
    read, handed = [], []
    monkeypatch.setattr(harness, "resolve_sets", lambda *a, _r=harness.resolve_sets: (
        read.append(1), _r(*a))[1])
    monkeypatch.setattr(harness, "score_suite", lambda *a, prepared=None, **kw: (
        handed.append(prepared), harness.ScoreRun(result=None, path=two_ranks.sub))[1])
    opts = harness.RunOptions(device="cpu", sandbox="none")
    ranks.score_suite(two_ranks.sub, options=opts)  # rank 1 reports first: rank 0 waits for it
    read.clear()
    two_ranks.rank[0] = 0
    ranks.score_suite(two_ranks.sub, options=opts)
    assert len(read) == 1 and [a.set.name for a in handed[0][3]] == [
        "imagenet-a", "imagenet-real", "imagenet", "objectnet"]


def test_outside_torchrun_it_is_the_one_process_run(two_ranks, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE")
    ranks.score_suite(two_ranks.sub)
    assert two_ranks.calls == {"children": [], "whole": 1}



@pytest.mark.slow
def test_two_process_torchrun_equals_one_process(tmp_path, isolated_home):
    """The real thing on CPU: 2 ranks under torchrun (gloo), each its own child; the result is
    the one-process result's, printed once."""
    import json
    import os
    import socket
    import subprocess
    import sys

    import suite_data as sd

    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    sd.build_objectnet(isolated_home, tmp_path / "src")
    sub = sd.write_submission(tmp_path / "subs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["score", str(sub), "--suite", "--batch-size", "2", "--workers", "0", "-q",
            "--device", "cpu", "--home", str(isolated_home)]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
         str(port), "-m", "imagenet_hard", *args, "--out", str(tmp_path / "two.suite.json")],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("result:") == 1  # only rank 0 writes and prints
    one = ranks.score_suite(sub, home=isolated_home, out=tmp_path / "one.suite.json",
                            options=harness.RunOptions(batch_size=2, workers=0, device="cpu"))
    two = json.loads((tmp_path / "two.suite.json").read_text())
    assert one.predicted == 0  # every row came from the two ranks' caches
    assert [(s["name"], s["metrics"]) for s in two["sets"]] == \
        [(s["name"], s["metrics"]) for s in one.result.sets]
