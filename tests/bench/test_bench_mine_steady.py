"""``imhard bench mine``'s MFU counts the engine's steady judging only, not its start-up."""

from __future__ import annotations

import torch
from mining_support import SynthImage, make_source

from imagenet_hard.bench import mine as bench_mine_module
from imagenet_hard.bench.mine import BENCH_SOURCE, steady_exhaustive
from imagenet_hard.judges import ScriptedJudge
from imagenet_hard.mining import engine
from imagenet_hard.mining.order import N_CROPS


class Clock:
    """A perf_counter that moves only when the engine works: start-up costs 1000 s, each judged
    shard 2 s, so a timing that includes start-up cannot go unnoticed."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_steady_timing_excludes_worker_start_and_first_pass(tmp_path, monkeypatch):
    make_source(tmp_path, BENCH_SOURCE, [SynthImage("a.png", (30, 20), (1,), 1)])
    clock = Clock()
    real_init, real_mine = engine.ShardMiner.__init__, engine.ShardMiner.mine_shard
    calls = []

    def init(self, *a, **kw):
        clock.now += 1000.0  # loader workers, pinned buffers, allocator: start-up
        real_init(self, *a, **kw)

    def mine_shard(self, images):
        calls.append(len(images))
        clock.now += 1000.0 if len(calls) == 1 else 2.0  # the first pass warms the caches
        return real_mine(self, images)

    monkeypatch.setattr(engine.ShardMiner, "__init__", init)
    monkeypatch.setattr(engine.ShardMiner, "mine_shard", mine_shard)
    monkeypatch.setattr(bench_mine_module.time, "perf_counter", clock)
    judge = ScriptedJudge(lambda crops: torch.zeros(len(crops), dtype=torch.long))
    timing = steady_exhaustive(judge, torch.device("cpu"), tmp_path, 64, 0, "paper")
    assert timing.seconds == 2.0
    assert timing.items == N_CROPS + 1  # one image: its 324 crops and the 1-crop
