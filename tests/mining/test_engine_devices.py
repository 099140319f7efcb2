"""The mining engine's device paths, checked on the CPU: crops made on the device and on the host
kept apart (exhaustive --crops torch), verdicts copied to the host behind events, and near-ties
of a low-precision judge re-judged in fp32 so verdicts do not depend on the batch size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mining_support import SynthImage, make_source

from imagenet_hard.judges.base import Judge
from imagenet_hard.mining import engine, order
from imagenet_hard.mining.engine import ONE_CROP, CropBuffer, ShardMiner
from imagenet_hard.mining.plan import ImageRow

LABEL, RIVAL = 7, 8


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    home = tmp_path_factory.mktemp("engine_home")
    rows = make_source(home, "synth", [SynthImage("a.png", (40, 30), (LABEL,), 1),
                                       SynthImage("b.png", (33, 47), (LABEL,), 2)])
    return home, [ImageRow(r.id, "synth", r.origin, r.path, tuple(r.label), r.label_space)
                  for r in rows]


def test_crop_buffer_keeps_crops_on_its_device_and_indices_on_the_host():
    """meta stands in for CUDA: the 1-crop arrives from a loader worker on the host, the torch
    backend's zoom crops on the device; a batch must be one device's tensor."""
    buf = CropBuffer(torch.device("meta"))
    buf.add(0, (ONE_CROP,), torch.zeros((1, 3, 224, 224), dtype=torch.uint8))
    buf.add(0, (0, 1, 2), torch.zeros((3, 3, 224, 224), dtype=torch.uint8, device="meta"))
    pos, crop, x = buf.take(4)
    assert x.device.type == "meta" and x.shape == (4, 3, 224, 224)
    assert pos.device.type == crop.device.type == "cpu"
    assert crop.tolist() == [ONE_CROP, 0, 1, 2] and pos.tolist() == [0] * 4


def test_miner_puts_torch_made_crops_in_a_device_buffer(images, monkeypatch):
    home, rows = images
    made = []
    real = CropBuffer.__init__

    def spy(self, device=None):
        made.append(device)
        real(self, device)

    monkeypatch.setattr(CropBuffer, "__init__", spy)
    miner = ShardMiner(_FixedJudge(), {"in1k": tuple(range(1000))}, home, torch.device("cpu"),
                       exhaustive=True, batch_size=50, workers=0, crops="torch")
    out = miner.mine_shard(rows[:1])
    assert made and all(torch.device(d) == miner.device for d in made)
    assert all(r["n_forward"] == order.N_CROPS + 1 for r in out)


class _FixedJudge(Judge):
    """Right on every crop (fp32)."""

    def __init__(self):
        super().__init__("fixed", device="cpu", precision="fp32")

    def forward(self, x):
        logits = torch.zeros((x.shape[0], 1000))
        logits[:, LABEL] = 1.0
        return logits


class NearTieJudge(Judge):
    """bf16 autocast on the CPU. One crop in three is a near-tie: in fp32 the label beats its
    rival by 0.01; under autocast the rival gets +0.02 in batches of odd size, as a low-precision
    kernel whose reduction order follows the batch shape would."""

    def __init__(self):
        super().__init__("near-tie", device="cpu", precision="bf16")
        self.fp32_calls = 0

    def forward(self, x):
        tied = (x.flatten(1).sum(1) * 255).round().long() % 3 == 0
        logits = torch.zeros((x.shape[0], 1000))
        logits[:, LABEL] = 10.0
        logits[:, RIVAL] = torch.where(tied, 9.99, 5.0)
        if torch.is_autocast_enabled("cpu"):
            if x.shape[0] % 2:
                logits[:, RIVAL] += 0.02
        else:
            self.fp32_calls += 1
        return logits


def _masks(home, rows, batch_size):
    judge = NearTieJudge()
    miner = ShardMiner(judge, {"in1k": tuple(range(1000))}, home, torch.device("cpu"),
                       exhaustive=True, batch_size=batch_size, workers=0)
    out = miner.mine_shard(rows)
    return np.array([r["mask"] for r in out]), miner, judge


def test_near_ties_are_rejudged_in_fp32_so_batch_size_does_not_matter(images):
    home, rows = images
    odd, miner_odd, judge_odd = _masks(home, rows[:1], 63)
    even, miner_even, _ = _masks(home, rows[:1], 64)
    assert np.array_equal(odd, even)
    assert odd.all()  # in fp32 the label wins every near-tie
    assert miner_odd.rejudged > 0 and judge_odd.fp32_calls > 0
    assert miner_even.rejudged == miner_odd.rejudged  # the same crops are near-ties either way


class FakeEvent:
    log: list = []

    def __init__(self):
        self.id = sum(1 for e in FakeEvent.log if e[0] == "record")

    def record(self):
        FakeEvent.log.append(("record", self.id))

    def synchronize(self):
        FakeEvent.log.append(("sync", self.id))


def test_verdicts_reach_the_host_behind_events_one_batch_late(images):
    """The CUDA branch of the verdict copies (pinned buffers, non_blocking copies, an event per
    batch) run on the CPU with a recording event: batch k is waited for only after batch k + 1
    was launched, each exactly once, and the verdicts equal the plain CPU path's."""
    home, rows = images
    spaces = {"in1k": tuple(range(1000))}
    plain = ShardMiner(_FixedJudge(), spaces, home, torch.device("cpu"), exhaustive=True,
                       batch_size=40, workers=0).mine_shard(rows)
    miner = ShardMiner(_FixedJudge(), spaces, home, torch.device("cpu"), exhaustive=True,
                       batch_size=40, workers=0)
    miner.copies = engine.VerdictCopies(torch.device("cpu"), 40, asynchronous=True,
                                        event=FakeEvent)
    FakeEvent.log = []
    assert miner.mine_shard(rows) == plain
    log = FakeEvent.log
    records = [i for kind, i in log if kind == "record"]
    syncs = [i for kind, i in log if kind == "sync"]
    assert sorted(syncs) == records and len(records) > 2
    for k in records[:-1]:  # batch k's wait comes after batch k + 1's launch
        assert log.index(("sync", k)) > log.index(("record", k + 1))


def test_small_dev_shm_is_one_sentence_before_any_worker_starts(tmp_path, monkeypatch):
    """Containers often give /dev/shm 64 MB: loader workers would die mid-run (bus error)."""
    import os

    from imagenet_hard import devices
    from imagenet_hard.errors import InvalidValueError

    class Small:
        f_bavail, f_frsize = 16, 4 * 1024 * 1024  # 64 MiB free

    real = os.statvfs
    monkeypatch.setattr(os, "statvfs", lambda p: Small() if p == devices.SHM else real(p))
    started = []
    monkeypatch.setattr(engine, "DataLoader", lambda *a, **kw: started.append(kw))
    with pytest.raises(InvalidValueError) as err:
        ShardMiner(_FixedJudge(), {"in1k": tuple(range(1000))}, tmp_path, torch.device("cpu"),
                   workers=4)
    message = str(err.value)
    assert "/dev/shm" in message and "64 MiB" in message and "--workers 1" in message
    assert "--shm-size" in message and message.count(". ") == 0
    assert started == []
    ShardMiner(_FixedJudge(), {"in1k": tuple(range(1000))}, tmp_path, torch.device("cpu"),
               workers=1)  # what the message says fits
    assert len(started) == 1
