"""CUDA against the CPU: each judge family's logits and verdicts, the CLIP reference submission's
fp16 weights, and the mining engine (early exit and exhaustive, both crop backends)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imagenet_hard.judges import create_judge
from imagenet_hard.models.open_clip import create_open_clip_model

SPECS = ["efficientnet-lite0", "open_clip:ViT-B-32/random"]


def crops(n: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 224, 224), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("spec", SPECS)
def test_judges_fp32_on_cuda_agree_with_the_cpu(cuda, spec):
    torch.manual_seed(0)
    cpu = create_judge(spec, "cpu", precision="fp32")
    torch.manual_seed(0)
    gpu = create_judge(spec, cuda, precision="fp32")
    x = crops()
    a, b = cpu(x), gpu(x).cpu()
    assert torch.allclose(a, b, atol=1e-2, rtol=1e-3), (a - b).abs().max()
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.97


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_judges_low_precision_on_cuda_stay_close(cuda, spec, precision):
    torch.manual_seed(0)
    cpu = create_judge(spec, "cpu", precision="fp32")
    torch.manual_seed(0)
    gpu = create_judge(spec, cuda, precision=precision)
    x = crops()
    a, b = cpu(x), gpu(x).cpu()
    assert b.dtype == torch.float32 and torch.isfinite(b).all()
    # Noise crops give flat logits with many near-ties: agreement is loose (7/8 of 32 on the CPU
    # twin of this test in bf16); the verdict-level check is the bf16 mining test below.
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.75


def test_clip_fp16_weights_predict_on_cuda(cuda):
    torch.manual_seed(0)
    half = create_open_clip_model("ViT-B-32/random", device=cuda, precision="fp16")
    torch.manual_seed(0)
    full = create_open_clip_model("ViT-B-32/random", device="cpu")
    im = [Image.fromarray(np.asarray(crops(1)[0].permute(1, 2, 0)))]
    a, b = full.predict(im), half.predict(im).cpu()
    assert b.dtype == torch.float32 and (a - b).abs().max() < 0.5


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from imagenet_hard.mining.plan import load_workload
    from imagenet_hard.sources import build_source

    home = tmp_path_factory.mktemp("gpu_sample")
    build_source("sample", home=home)
    return load_workload(["sample"], home)


@pytest.mark.parametrize("backend", ["pil", "torch"])
@pytest.mark.parametrize("exhaustive", [False, True])
def test_mining_on_cuda_equals_the_cpu(cuda, sample, backend, exhaustive):
    from imagenet_hard.mining.engine import ShardMiner

    rows = {}
    for dev in ("cpu", cuda):
        judge = create_judge("efficientnet-lite0", dev, precision="fp32")
        miner = ShardMiner(judge, sample.spaces, sample.home, torch.device(dev),
                           exhaustive=exhaustive, batch_size=64, workers=2, crops=backend)
        try:
            rows[str(dev)] = miner.mine_shard(sample.images)
        finally:
            miner.close()
    cpu, gpu = rows["cpu"], rows[str(cuda)]
    assert [r["correct"] for r in cpu] == [r["correct"] for r in gpu]
    if exhaustive:
        a = np.array([r["mask"] for r in cpu])
        b = np.array([r["mask"] for r in gpu])
        assert (a == b).mean() >= 0.995, (a != b).sum()


def test_bf16_mining_rejudges_near_ties_and_counts_them(cuda, sample):
    from imagenet_hard.mining.engine import ShardMiner

    masks = []
    for batch in (63, 64):
        judge = create_judge("efficientnet-lite0", cuda, precision="bf16")
        miner = ShardMiner(judge, sample.spaces, sample.home, cuda, exhaustive=True,
                           batch_size=batch, workers=2)
        try:
            masks.append(np.array([r["mask"] for r in miner.mine_shard(sample.images)]))
        finally:
            miner.close()
        assert miner.math == "bf16 autocast"
    assert (masks[0] == masks[1]).mean() >= 0.999
