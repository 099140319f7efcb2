"""nvJPEG against libjpeg: JPEGs decoded on the device (``--crops torch`` on CUDA) give zoom
crops within torchvision's own bound for the two decoders (mean difference < 2 grey levels;
nvJPEG's IDCT and chroma upsampling are not libjpeg's), and a shard mined with device decoding
has the CPU decode's image count, forward passes and (nearly) its verdicts. Prints the figures."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from imagenet_hard.mining import decode
from imagenet_hard.zoom import zoom_crops_torch


def photo_jpeg(w: int, h: int, seed: int = 0, **save) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 255 * (x + y) / (w + h)
    arr = np.stack([base, 255 - base, (x % 7 < 3) * 255.0], axis=-1)
    img = Image.fromarray(np.clip(arr + rng.normal(0, 10, arr.shape), 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


@pytest.mark.parametrize("size,save", [((500, 375), {}), ((2000, 1500), {}),
                                       ((640, 480), {"subsampling": 0})])
def test_nvjpeg_crops_are_within_two_grey_levels_on_average_of_libjpegs(cuda, size, save):
    data = photo_jpeg(*size, **save)
    assert decode.gpu_jpeg(data)
    cpu_img = decode.pixels(data).permute(2, 0, 1)
    gpu_img = decode.decode_on_device(torch.frombuffer(bytearray(data), dtype=torch.uint8), cuda)
    assert gpu_img.device.type == "cuda" and gpu_img.shape == cpu_img.shape
    img_diff = (gpu_img.cpu().int() - cpu_img.int()).abs().float()
    cpu = zoom_crops_torch([cpu_img], cuda)[0]
    gpu = zoom_crops_torch([gpu_img], cuda)[0]
    diff = (cpu.int() - gpu.int()).abs().float()
    print(f"\n{size} {save}: decode mean {img_diff.mean():.3f} max {img_diff.max():.0f}; "
          f"crops mean {diff.mean():.3f} max {diff.max():.0f}")
    assert float(img_diff.mean()) < 2 and float(diff.mean()) < 2


def test_device_decoded_mining_matches_the_cpu_decode(cuda, tmp_path):
    """Exhaustive --crops torch on CUDA with and without device decoding, with a judge that
    needs no weights (a fixed random linear map of the pooled crops): the same forward passes;
    crop verdicts differ only where the decoders do (printed, at most 2 %)."""
    from mining_support import SynthImage, make_source

    from imagenet_hard.judges.base import Judge
    from imagenet_hard.mining.engine import ShardMiner
    from imagenet_hard.mining.plan import ImageRow

    class Linear(Judge):
        def __init__(self):
            super().__init__("linear", device=cuda, precision="fp32")
            gen = torch.Generator().manual_seed(0)
            self.w = torch.randn((3 * 16 * 16, 1000), generator=gen).to(cuda)

        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(x, 16).flatten(1) @ self.w

    rows = make_source(tmp_path, "synth", [SynthImage(f"{k}.png", (400, 300), (k,), k)
                                           for k in range(3)])
    for k, row in enumerate(rows):
        (tmp_path / row.path).write_bytes(photo_jpeg(400 + 10 * k, 300, seed=k))
    images = [ImageRow(r.id, "synth", r.origin, r.path, tuple(r.label), r.label_space)
              for r in rows]
    out = {}
    for on_device in (False, True):
        miner = ShardMiner(Linear(), {"in1k": tuple(range(1000))}, tmp_path, cuda,
                           exhaustive=True, workers=0, crops="torch", device_decode=on_device)
        out[on_device] = miner.mine_shard(images)
    assert [r["n_forward"] for r in out[True]] == [r["n_forward"] for r in out[False]]
    flips = sum(a != b for r, s in zip(out[True], out[False], strict=True)
                for a, b in zip(r["mask"], s["mask"], strict=True))
    print(f"\ncrop verdicts that differ between nvJPEG and libjpeg: {flips} of {3 * 324}")
    assert flips <= 0.02 * 3 * 324
