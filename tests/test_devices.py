"""One meaning of --device: the shared resolver and the three places that use it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from imagenet_hard.devices import resolve_device
from imagenet_hard.errors import InvalidValueError


def fake_cuda(monkeypatch, count: int) -> None:
    """Make torch see ``count`` CUDA devices (0: none), whatever this machine has: the resolver
    asks ``torch.cuda.is_available`` and ``torch.cuda.device_count`` only."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


@pytest.mark.parametrize("device", [None, "auto", "AUTO", "cpu"])
def test_none_and_auto_mean_cuda_when_present_else_cpu(monkeypatch, device):
    fake_cuda(monkeypatch, 0)
    assert resolve_device(device) == torch.device("cpu")
    fake_cuda(monkeypatch, 2)
    expected = torch.device("cpu") if device == "cpu" else torch.device("cuda", 0)
    assert resolve_device(device) == expected


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_says_what_to_use(monkeypatch, device):
    fake_cuda(monkeypatch, 0)
    with pytest.raises(InvalidValueError, match="no CUDA device; use --device cpu"):
        resolve_device(device)


def test_bare_cuda_is_this_ranks_gpu_of_those_present(monkeypatch):
    fake_cuda(monkeypatch, 2)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("cuda") == torch.device("cuda", 1)  # rank 3 of 2 GPUs
    assert resolve_device("auto", rank=0) == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(InvalidValueError, match=r"torch sees 2 CUDA device\(s\)"):
        resolve_device("cuda:2")


def test_a_device_torch_does_not_know_is_one_clear_error():
    with pytest.raises(InvalidValueError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_judges_mining_and_scoring_resolve_the_same_way(monkeypatch):
    from imagenet_hard import jobs
    from imagenet_hard.judges import ScriptedJudge
    from imagenet_hard.score import RunOptions

    fake_cuda(monkeypatch, 0)
    judge = ScriptedJudge(lambda crops: torch.zeros(crops.shape[0], dtype=torch.long), device=None)
    assert judge.device == jobs.resolve_device("auto") == resolve_device(None)
    assert RunOptions(device=None).resolved_device() == RunOptions(device="auto").resolved_device()
    assert RunOptions().resolved_device() == str(resolve_device(None))
    for call in (lambda: ScriptedJudge(lambda c: c, device="cuda"),
                 lambda: jobs.resolve_device("cuda"),
                 lambda: RunOptions(device="cuda").resolved_device()):
        with pytest.raises(InvalidValueError, match="no CUDA"):
            call()


@pytest.mark.gpu
def test_bare_cuda_is_this_ranks_gpu(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    expected = 1 % torch.cuda.device_count()
    assert resolve_device("cuda") == torch.device("cuda", expected)
    assert resolve_device("cuda", rank=0) == torch.device("cuda", 0)


@pytest.fixture
def tf32_flags():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_fp32_on_cuda_switches_tf32_off_and_says_so(tf32_flags):
    """cuDNN's default (TF32 convolutions) would make a recorded fp32 run a TF32 one."""
    from imagenet_hard.devices import strict_fp32

    torch.backends.cudnn.allow_tf32 = True  # torch's default
    assert strict_fp32("cuda") == "fp32"
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32


def test_an_fp32_judge_on_cuda_mines_without_tf32(tf32_flags, monkeypatch, tmp_path):
    from imagenet_hard.judges import ScriptedJudge
    from imagenet_hard.mining.engine import ShardMiner

    torch.backends.cudnn.allow_tf32 = True
    judge = ScriptedJudge(lambda crops: torch.zeros(len(crops), dtype=torch.long))
    miner = ShardMiner(judge, {"in1k": tuple(range(1000))}, tmp_path, torch.device("cpu"),
                       workers=0)
    assert miner.math == "fp32"
    # The same judge on a CUDA device (faked: only the flags are looked at) turns TF32 off.
    monkeypatch.setattr(judge, "device", torch.device("cuda", 0))
    from imagenet_hard.mining import engine

    assert engine.judge_math(judge) == "fp32" and not torch.backends.cudnn.allow_tf32


def test_device_name_needs_torch_only_where_a_gpu_driver_is(monkeypatch, tmp_path):
    import subprocess
    import sys

    from imagenet_hard import devices

    code = ("import sys; from imagenet_hard.devices import device_name; "
            "print(device_name('cpu'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["cpu", "False"]
    monkeypatch.setattr(devices, "GPU_DRIVER_PATHS", (str(tmp_path / "nvidiactl"),))
    fake_cuda(monkeypatch, 2)  # torch would say CUDA: with no driver, it is not asked
    assert devices.device_name(None) == devices.device_name("auto") == "cpu"
    (tmp_path / "nvidiactl").touch()  # a driver: torch decides, as resolve_device does
    assert devices.device_name("auto") == "cuda:0"
    assert devices.device_name("cuda:1") == "cuda:1"


def test_scoring_loader_defaults_come_from_the_device(monkeypatch):
    """One resolver: CUDA takes CPUs-1 workers up to 16 and batches of 256; the CPU keeps
    min(4, CPUs-1) and 32; what the user gave wins."""
    from imagenet_hard import devices

    monkeypatch.setattr(devices, "cpu_count", lambda: 32)
    assert devices.scoring_loader("cuda:0") == (16, 256)
    assert devices.scoring_loader("cpu") == (4, 32)
    assert devices.scoring_loader("cuda", 2, 8) == (2, 8)
    monkeypatch.setattr(devices, "cpu_count", lambda: 8)
    assert devices.scoring_loader("cuda:1") == (7, 256)
    monkeypatch.setattr(devices, "cpu_count", lambda: 1)
    assert devices.scoring_loader("cpu") == (0, 32)
    from imagenet_hard.score import RunOptions  # where scoring asks it

    monkeypatch.setattr(RunOptions, "resolved_device", lambda self: "cuda:0")
    assert (RunOptions().resolved_workers(), RunOptions().resolved_batch_size()) == (0, 256)
    assert (RunOptions(workers=3, batch_size=5).resolved_workers(),
            RunOptions(workers=3, batch_size=5).resolved_batch_size()) == (3, 5)


class SmallShm:
    f_bavail, f_frsize = 16, 4 * 1024 * 1024  # 64 MiB free


@pytest.fixture
def small_shm(monkeypatch):
    """A 64 MiB /dev/shm; the pickling registrations and the record put back afterwards."""
    import os
    from multiprocessing.reduction import ForkingPickler

    from imagenet_hard import devices

    real = os.statvfs
    monkeypatch.setattr(os, "statvfs", lambda p: SmallShm() if p == devices.SHM else real(p))
    monkeypatch.setattr(ForkingPickler, "_extra_reducers", dict(ForkingPickler._extra_reducers))
    monkeypatch.setitem(devices._TRANSPORT, "tensors", "shared memory")
    return devices


def test_small_dev_shm_sends_tensors_through_pipes(small_shm, monkeypatch):
    """One-at-a-time loaders (mining's) keep their workers: tensors are pickled by value into
    the workers' pipes, using no /dev/shm (torch's file_system strategy would still use it)."""
    import multiprocessing
    import pickle
    from multiprocessing.reduction import ForkingPickler

    devices, lines = small_shm, []
    t = torch.arange(4096, dtype=torch.float32)
    assert len(ForkingPickler.dumps(t)) < t.nbytes  # a shared segment's name
    assert devices.fit_shared_memory(4, 32 << 20, 4, echo=lines.append) == 4
    sent = ForkingPickler.dumps(t)
    assert len(sent) > t.nbytes and torch.equal(pickle.loads(sent), t)
    assert len(lines) == 1 and "64 MiB free" in lines[0] and "pipes" in lines[0]
    assert devices.tensor_transport().startswith("pipes")
    devices.check_shared_memory(4, 32 << 20, 4)  # the engine's own check passes from now on
    monkeypatch.setitem(devices._TRANSPORT, "tensors", "shared memory")
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda *a: "spawn")
    with pytest.raises(InvalidValueError, match="--shm-size.*--workers 0$"):
        devices.fit_shared_memory(4, 32 << 20, 4)  # spawned workers import torch's own way


def test_small_dev_shm_gives_a_batching_loader_the_workers_that_fit(small_shm):
    lines = []
    assert small_shm.fit_shared_memory(8, 16 << 20, 1, batched=True, echo=lines.append) == 4
    assert len(lines) == 1 and "using 4" in lines[0]
    assert small_shm.fit_shared_memory(8, 1 << 20, 2, batched=True) == 8  # fits: unchanged
    assert small_shm.tensor_transport() == "shared memory"


_FAULTS = """
import resource, sys
import numpy as np
from imagenet_hard import devices
kept = devices.keep_freed_memory() if sys.argv[1] == "keep" else None
a = np.ones(64 << 20, dtype=np.uint8); del a         # 64 MiB: mapped afresh by default
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    a = np.ones(64 << 20, dtype=np.uint8); del a
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_not_faulted_in_again():
    """What made a CPU forward pass spend a third of its time in the kernel: every large
    activation mapped afresh and unmapped when freed. After keep_freed_memory the next batch
    reuses the freed pages (the judges and the scoring child call it on the CPU)."""
    def faults(mode):
        # numpy would ask for huge pages (a few faults a 64 MiB array); torch's tensors do not
        env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True,
                             text=True, check=True, env=env).stdout.split()
        return out[0], int(out[1])

    assert faults("default") == ("None", pytest.approx(4 * 16384, rel=0.1))  # 4 KiB pages
    kept, n = faults("keep")
    assert kept == "True" and n < 1000
