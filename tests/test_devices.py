"""One meaning of --device: the shared resolver and the three places that use it."""

from __future__ import annotations

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
    from imagenet_hard.devices import math_mode, strict_fp32

    torch.backends.cudnn.allow_tf32 = True  # torch's default
    assert math_mode("cuda", None) == "fp32+tf32"
    assert strict_fp32("cuda") == "fp32"
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert math_mode("cuda", None) == "fp32"
    assert math_mode("cpu", torch.bfloat16) == "bf16 autocast"


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
