"""The sharded-job engine (``imagenet_hard.jobs``) that mining and the ImageNet-C build run on."""

from __future__ import annotations

import sys

import pytest

from imagenet_hard import jobs
from imagenet_hard.errors import ImHardError, InvalidValueError


def test_split_count_and_round_robin_pending(tmp_path):
    items = tuple(range(7))
    assert jobs.split(items, 3) == [(0, 1, 2), (3, 4, 5), (6,)]
    assert [jobs.count(n, 3) for n in (0, 1, 3, 7)] == [0, 1, 1, 3]
    paths = [tmp_path / f"shard-{g}" for g in range(5)]
    paths[2].touch()
    assert jobs.missing(paths) == jobs.pending(paths, jobs.Ranks()) == [0, 1, 3, 4]
    assert jobs.pending(paths, jobs.Ranks(rank=0, world=2)) == [0, 4]
    assert jobs.pending(paths, jobs.Ranks(rank=1, world=2)) == [1, 3]


def test_a_single_process_needs_no_torch(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    ranks, device = jobs.setup(None, cpu_only=True)
    assert (ranks, device) == (jobs.Ranks(), "cpu") and jobs.is_rank_zero()
    assert not ranks.distributed and ranks.mine(5)
    assert jobs.merge_on_rank_zero(ranks, lambda: "merged") == "merged"
    assert jobs.sum_counts(ranks, [1.0, 2.0], "cpu") == [1.0, 2.0]
    jobs.teardown(ranks)


def test_check_on_rank_zero_raises_the_check_s_own_error():
    def check():
        raise InvalidValueError("settings differ")

    with pytest.raises(InvalidValueError, match="settings differ"):
        jobs.check_on_rank_zero(jobs.Ranks(), check, ImHardError)
    jobs.check_on_rank_zero(jobs.Ranks(), lambda: None)


def test_run_calls_on_done_per_task_in_order():
    seen = []
    jobs.run([[1, 2], [3]], sum, lambda task, result: seen.append((task, result)))
    assert seen == [([1, 2], 3), ([3], 3)]


def test_importing_the_engine_does_not_import_torch():
    import subprocess

    code = "import imagenet_hard.jobs, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ranks_sharing_a_gpu_use_gloo():
    """NCCL refuses two ranks on one GPU (the gpu suite's 2-rank torchrun on one card)."""
    assert jobs.group_backend("cuda", 2, 8) == "nccl"
    assert jobs.group_backend("cuda", 2, 1) == "gloo"
    assert jobs.group_backend("cpu", 2, 0) == "gloo"


class FakeStore:
    """torch.distributed's store as the ranks share it: ``add`` returns the new value."""

    def __init__(self):
        self.values = {}

    def add(self, key, n):
        self.values[key] = self.values.get(key, 0) + n
        return self.values[key]


def test_shards_are_handed_out_as_ranks_free_up(monkeypatch):
    """A slow rank takes one shard while the fast one takes the rest; none twice, none lost."""
    import torch.distributed as dist

    store = FakeStore()
    monkeypatch.setattr(dist.distributed_c10d, "_get_default_store", lambda: store)
    monkeypatch.setattr(jobs, "_HANDOUTS", iter([7, 7]))  # both ranks' first handout: one key
    todo = [2, 3, 5, 8, 9]
    fast = jobs.handout(todo, jobs.Ranks(0, 2))
    slow = jobs.handout(todo, jobs.Ranks(1, 2))
    got = {"slow": [next(slow)], "fast": list(fast)}
    got["slow"] += list(slow)
    assert got == {"slow": [2], "fast": [3, 5, 8, 9]}
    assert list(jobs.handout(todo, jobs.Ranks())) == todo  # one process: all, in order
