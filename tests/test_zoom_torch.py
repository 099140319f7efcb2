"""The torch zoom path's GPU hazards, shown on the CPU: shrink factors CUDA's antialiased
interpolate refuses, and index tensors built per scale (a host-device sync each on CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from imagenet_hard import zoom
from imagenet_hard.zoom import aa_weights, image_to_tensor, zoom_crops, zoom_crops_torch

#: What CUDA's upsample_bicubic2d_aa refuses (shared memory for the weights), per the issue.
CUDA_AA_LIMIT = 91


def synthetic(width: int, height: int, seed: int = 0) -> Image.Image:
    """Noise over a gradient with hard stripes: every resampling slip shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 255 * (x + y) / (width + height)
    arr = np.stack([base, 255 - base, (x % 7 < 3) * 255.0], axis=-1)
    return Image.fromarray(np.clip(arr + rng.normal(0, 40, arr.shape), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("n_in,n_out", [(1000, 10), (4000, 13), (91 * 11 + 5, 11), (333, 100),
                                        (50, 10)])
def test_weight_matrix_is_interpolates_linear_map(n_in, n_out):
    x = torch.rand(2, 3, 5, n_in, dtype=torch.float64) * 255
    ref = F.interpolate(x, size=(5, n_out), mode="bicubic", antialias=True, align_corners=False)
    ours = x @ torch.from_numpy(aa_weights(n_in, n_out)).T
    assert (ours - ref).abs().max().item() < 1e-6


@pytest.fixture
def cuda_like_interpolate(monkeypatch):
    """F.interpolate as CUDA behaves: antialiased passes shrinking > 91× fail."""
    real = F.interpolate
    refused = []

    def interpolate(x, size=None, mode="nearest", antialias=False, **kw):
        if antialias and size is not None:
            factor = max(a / b for a, b in zip(x.shape[-2:], size, strict=True))
            if factor > CUDA_AA_LIMIT:
                refused.append(factor)
                raise RuntimeError("Provided interpolation parameters can not be handled with "
                                   "current algorithm implementation. Please reduce the scale "
                                   "factor. Too much shared memory required")
        return real(x, size=size, mode=mode, antialias=antialias, **kw)

    monkeypatch.setattr(F, "interpolate", interpolate)
    return refused


def test_huge_shrink_factors_resize_within_the_documented_tolerance(cuda_like_interpolate):
    image = synthetic(1000, 950)  # S=10 shrinks 95×: past CUDA's limit
    wanted = list(range(18))  # S=10 and S=16
    fast = zoom_crops_torch([image_to_tensor(image)], "cpu", indices=wanted)[0]
    assert cuda_like_interpolate == []  # never asked interpolate for what CUDA refuses
    exact = zoom_crops(image, wanted)
    assert int((exact.int() - fast.int()).abs().max()) <= 2  # zoom's documented bound vs PIL


def test_weight_matrix_path_rounds_like_interpolate(monkeypatch):
    image = image_to_tensor(synthetic(700, 680, seed=3))[None].float()
    ours = zoom._resize_torch(image.clone(), 10)  # 70×: the matrix path
    monkeypatch.setattr(zoom, "MAX_AA_SHRINK", 10_000)
    plain = zoom._resize_torch(image.clone(), 10)
    assert int((ours.int() - plain.int()).abs().max()) <= 1


def test_index_tensors_are_built_on_the_host_once(monkeypatch):
    calls = []
    real = torch.tensor

    def counting(*args, **kwargs):
        calls.append(kwargs.get("device"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "tensor", counting)
    images = [image_to_tensor(synthetic(64, 48, seed=1)), image_to_tensor(synthetic(50, 50))]
    out = zoom_crops_torch(images, "cpu")  # two size groups, 36 scales each
    assert out.shape == (2, 324, 3, 224, 224)
    assert calls == [], f"{len(calls)} torch.tensor calls (a host-device sync each on CUDA)"
