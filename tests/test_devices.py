"""One meaning of --device: the shared resolver and the three places that use it."""

from __future__ import annotations

import pytest
import torch

from imagenet_hard.devices import resolve_device
from imagenet_hard.errors import InvalidValueError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@no_cuda
@pytest.mark.parametrize("device", [None, "auto", "AUTO", "cpu"])
def test_none_and_auto_mean_cuda_when_present_else_cpu(device):
    assert resolve_device(device) == torch.device("cpu")


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_says_what_to_use(device):
    with pytest.raises(InvalidValueError, match="no CUDA device; use --device cpu"):
        resolve_device(device)


def test_a_device_torch_does_not_know_is_one_clear_error():
    with pytest.raises(InvalidValueError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


@no_cuda
def test_judges_mining_and_scoring_resolve_the_same_way():
    from imagenet_hard.judges import ScriptedJudge
    from imagenet_hard.mining import distributed
    from imagenet_hard.score import RunOptions

    judge = ScriptedJudge(lambda crops: torch.zeros(crops.shape[0], dtype=torch.long), device=None)
    assert judge.device == distributed.resolve_device("auto") == resolve_device(None)
    assert RunOptions(device=None).resolved_device() == RunOptions(device="auto").resolved_device()
    assert RunOptions().resolved_device() == str(resolve_device(None))
    for call in (lambda: ScriptedJudge(lambda c: c, device="cuda"),
                 lambda: distributed.resolve_device("cuda"),
                 lambda: RunOptions(device="cuda").resolved_device()):
        with pytest.raises(InvalidValueError, match="no CUDA"):
            call()


@pytest.mark.gpu
def test_bare_cuda_is_this_ranks_gpu(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    expected = 1 % torch.cuda.device_count()
    assert resolve_device("cuda") == torch.device("cuda", expected)
    assert resolve_device("cuda", rank=0) == torch.device("cuda", 0)
