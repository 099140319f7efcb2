"""The sharded-job engine (``imagenet_hard.jobs``) that mining and the ImageNet-C build run on."""

from __future__ import annotations

import itertools
import sys

import pytest
from jobs_support import FakeStore

from imagenet_hard import jobs
from imagenet_hard.errors import ImHardError, InvalidValueError, StalledError


def test_split_count_and_missing(tmp_path):
    items = tuple(range(7))
    assert jobs.split(items, 3) == [(0, 1, 2), (3, 4, 5), (6,)]
    assert [jobs.count(n, 3) for n in (0, 1, 3, 7)] == [0, 1, 1, 3]
    paths = [tmp_path / f"shard-{g}" for g in range(5)]
    paths[2].touch()
    assert jobs.missing(paths) == jobs.shared_missing(paths, jobs.Ranks()) == [0, 1, 3, 4]


def test_a_single_process_needs_no_torch(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    ranks, device = jobs.setup(None, cpu_only=True)
    assert (ranks, device) == (jobs.Ranks(), "cpu") and jobs.is_rank_zero()
    assert not ranks.distributed
    assert jobs.finish(ranks, [1, 2], lambda total: ("merged", total)) == ("merged", [1, 2])
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



def test_shards_are_handed_out_as_ranks_free_up(monkeypatch):
    """A slow rank takes one shard while the fast one takes the rest; none twice, none lost."""
    store = FakeStore()
    monkeypatch.setattr(jobs, "_store", lambda: store)
    monkeypatch.setattr(jobs, "_HANDOUTS", iter([7, 7]))  # both ranks' first handout: one key
    todo = [2, 3, 5, 8, 9]
    fast = jobs.handout(todo, jobs.Ranks(0, 2))
    slow = jobs.handout(todo, jobs.Ranks(1, 2))
    got = {"slow": [next(slow)], "fast": list(fast)}
    got["slow"] += list(slow)
    assert got == {"slow": [2], "fast": [3, 5, 8, 9]}
    assert list(jobs.handout(todo, jobs.Ranks())) == todo  # one process: all, in order


class Clock:
    """A fake clock for :func:`jobs.finish`'s wait: each sleep moves it on and may let another
    rank do something through ``on_sleep(now)``."""

    def __init__(self, on_sleep=lambda now: None):
        self.now, self.on_sleep = 0.0, on_sleep

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.on_sleep(self.now)


def _finish(store, rank, world, counts, clock=None, merge=lambda total: total):
    clock = clock or Clock(lambda now: pytest.fail("this rank must not wait"))
    return jobs.finish(jobs.Ranks(rank, world), counts, merge, clock=clock, sleep=clock.sleep)


@pytest.fixture
def store(monkeypatch):
    store = FakeStore()
    monkeypatch.setattr(jobs, "_store", lambda: store)
    monkeypatch.setattr(jobs, "_FINISHES", itertools.repeat(4))  # every rank: one job's keys
    return store


def test_the_end_of_a_job_is_no_barrier(store):
    """A rank other than 0 reports its counts and leaves without waiting; rank 0 merges the sums
    once every rank has reported, also when it is the last to finish."""
    assert _finish(store, 1, 3, [5, 7]) is None
    assert _finish(store, 2, 3, [1, 0]) is None
    assert _finish(store, 0, 3, [2, 3], merge=lambda total: ("merged", total)) == \
        ("merged", [8, 10])


def test_rank_zero_waits_while_shards_finish_then_merges(store):
    """Rank 0 waits past the stall limit in all as long as shards keep finishing elsewhere."""
    limit = jobs.stall_limit(0, 0)

    def rank_one_working(now):
        store.add(jobs.TASKS_DONE, 1)  # a shard done every poll
        store.add(jobs.TASK_MS, 1000)
        if now > 3 * limit:
            _finish(store, 1, 2, [4])

    clock = Clock(rank_one_working)
    assert _finish(store, 0, 2, [1], clock) == [5]
    assert clock.now > 3 * limit


def test_rank_zero_gives_up_when_no_shard_finishes(store):
    """A stuck rank costs a clear error after the stall limit (a function of the mean shard
    time), not hours in a collective; the finished shards stay for the rerun."""
    def three_shards_then_stuck(now):
        if now <= 3 * jobs.POLL_S:
            store.add(jobs.TASKS_DONE, 1)
            store.add(jobs.TASK_MS, 600_000)  # 10-minute shards: a limit of 10 x 10 minutes

    clock = Clock(three_shards_then_stuck)
    with pytest.raises(StalledError, match="1 of 2 ranks have not finished.*rerun the same"):
        _finish(store, 0, 2, [1], clock)
    assert jobs.stall_limit(3, 1_800_000) == 6000
    assert 6000 < clock.now - 3 * jobs.POLL_S <= 6000 + 2 * jobs.POLL_S
    assert jobs.stall_limit(0, 0) == jobs.stall_limit(5, 5000) == 1800  # the floor


def test_run_counts_each_finished_task_in_the_store(store):
    jobs.run([[1], [2, 3], [4]], sum, lambda task, result: None, ranks=jobs.Ranks(1, 2))
    assert store.values[jobs.TASKS_DONE] == 3
