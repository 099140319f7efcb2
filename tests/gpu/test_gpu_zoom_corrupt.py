"""CUDA against the CPU: the torch zoom path (with shrink factors CUDA's antialiased kernel
refuses) and the ImageNet-C torch backend (the same seed, the same table on any device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imagenet_hard.corruptions.params import NAMES
from imagenet_hard.corruptions.torch_backend import corrupt_torch
from imagenet_hard.zoom import image_to_tensor, zoom_crops_torch


def noise_photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 255 * (x + y) / (w + h)
    arr = np.stack([base, 255 - base, (x % 7 < 3) * 255.0], axis=-1)
    return Image.fromarray(np.clip(arr + rng.normal(0, 30, arr.shape), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("size", [(500, 375), (2000, 1500)])
def test_zoom_crops_on_cuda_equal_the_cpu_within_a_grey_level(cuda, size):
    img = image_to_tensor(noise_photo(*size))
    cpu = zoom_crops_torch([img], "cpu")[0]
    gpu = zoom_crops_torch([img], cuda)[0].cpu()  # S=10 at 1500 px: a 150x shrink
    diff = (cpu.int() - gpu.int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_corruptions_on_cuda_equal_the_cpu(cuda, name):
    images = torch.from_numpy(np.asarray(noise_photo(320, 240)))[None].repeat(2, 1, 1, 1)
    cpu = corrupt_torch(images, name, 3, [1, 2], device="cpu")
    gpu = corrupt_torch(images, name, 3, [1, 2], device=cuda).cpu()
    diff = (cpu.int() - gpu.int()).abs()
    # Draws are made on the CPU, so random corruptions match too; float kernels differ by a level
    # or two, glass_blur's shuffled pixels a little more where a blur rounds the other way.
    assert float((diff > 2).float().mean()) < 1e-3, (name, int(diff.max()))
