"""Torch backend of the 19 ImageNet-C corruptions: batched, CPU or CUDA, no per-pixel loops.

:func:`corrupt_torch` corrupts a batch of same-size uint8 images (N, H, W, 3). Each image draws
from its own CPU ``torch.Generator`` seeded with its seed, every draw made on the CPU and moved to
the device, so the same (image, name, severity, seed) gives the same noise on any device (CUDA
generators' streams differ from the CPU's and between GPU models) whatever batch it is in. The definitions, parameters and
border rules are those of the reference ``imagecorruptions-imaug`` at any image size; where the
reference is deterministic the output matches it to a grey level or two, elsewhere it matches in
distribution (README, "Torch backend tolerances"). Noise, colour and digital corruptions live
here, blurs in :mod:`._torch_blur`, weather in :mod:`._torch_weather`, shared filters in
:mod:`._torch_filters`. ``jpeg_compression`` runs Pillow's encoder on the CPU, as the reference.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch

from ...errors import InvalidValueError, unknown_name
from ..params import NAMES, param
from . import blur, weather
from . import filters as flt
from .blur import rand, randn, unit

MIN_SIDE = 32


def _each(gens, make):
    return torch.stack([make(g) for g in gens])


def gaussian_noise(x8, severity, gens):
    x = unit(x8)
    noise = _each(gens, lambda g: randn(x.shape[1:], g, x.device))
    return x.add_(noise.mul_(param("gaussian_noise", severity))).clamp_(0, 1).mul_(255)


def shot_noise(x8, severity, gens):
    rate = param("shot_noise", severity)
    x = unit(x8).mul_(rate)
    counts = torch.stack([torch.poisson(x[i].cpu(), generator=g) for i, g in enumerate(gens)])
    counts = counts.to(x.device, non_blocking=True)
    return counts.div_(rate).clamp_(0, 1).mul_(255)


def impulse_noise(x8, severity, gens):
    """Salt and pepper: each channel of each pixel flips with probability ``amount``, to white
    or black with equal odds (scikit-image's ``random_noise(mode="s&p")``)."""
    amount = param("impulse_noise", severity)
    x = unit(x8)
    shape = x.shape[1:]
    flipped = _each(gens, lambda g: rand(shape, g, x.device) <= amount)
    salted = _each(gens, lambda g: rand(shape, g, x.device) <= 0.5)
    return torch.where(flipped, salted.to(x.dtype), x).mul_(255)


def speckle_noise(x8, severity, gens):
    x = unit(x8)
    noise = _each(gens, lambda g: randn(x.shape[1:], g, x.device))
    return x.addcmul_(x, noise.mul_(param("speckle_noise", severity))).clamp_(0, 1).mul_(255)


def contrast(x8, severity, gens):
    x = unit(x8)
    mean = x.mean((2, 3), keepdim=True)
    return x.sub_(mean).mul_(param("contrast", severity)).add_(mean).clamp_(0, 1).mul_(255)


def brightness(x8, severity, gens):
    """HSV value + c, clipped. With hue and saturation fixed, RGB scales with the value, so the
    round trip through HSV reduces to a per-pixel factor (black turns grey)."""
    x = unit(x8)
    v = x.amax(1, keepdim=True)
    lifted = (v + param("brightness", severity)).clamp_(max=1)
    out = torch.where(v > 0, x * (lifted / v.clamp_min(1e-12)), lifted)
    return out.clamp_(0, 1).mul_(255)


def saturate(x8, severity, gens):
    """HSV saturation s → clip(a·s + b). Each channel is v − s·v·w with w fixed by the hue, so
    the new channel is v − s'·v·(v − x)/(v − min). Grey pixels have hue 0 (red) in scikit-image,
    so a positive b tints them red, as in the reference."""
    factor, offset = param("saturate", severity)
    x = unit(x8)
    v = x.amax(1, keepdim=True)
    spread = v - x.amin(1, keepdim=True)
    coloured = spread > 0
    s = torch.where(coloured, spread / v.clamp_min(1e-12), 0.0)
    s_new = (s * factor + offset).clamp_(0, 1)
    out = v - s_new * v * (v - x) / spread.clamp_min(1e-12)
    grey = torch.cat([v, v * (1 - s_new), v * (1 - s_new)], dim=1)
    return torch.where(coloured, out, grey).clamp_(0, 1).mul_(255)


def pixelate(x8, severity, gens):
    """Pillow's BOX downscale by the severity's factor then NEAREST upscale, in Pillow's own
    fixed-point arithmetic (horizontal pass, 8-bit rounding, vertical pass)."""
    scale = param("pixelate", severity)
    _, _, h, w = x8.shape
    small_w, small_h = int(w * scale), int(h * scale)
    x = flt.pil_box_axis(x8.to(torch.int32), -1, small_w)
    x = flt.pil_box_axis(x, -2, small_h)
    rows = torch.as_tensor(flt.pil_nearest_index(small_h, h), device=x8.device)
    cols = torch.as_tensor(flt.pil_nearest_index(small_w, w), device=x8.device)
    return x.index_select(-2, rows).index_select(-1, cols).to(torch.float32)


def jpeg_compression(x8, severity, gens):
    from PIL import Image

    quality = param("jpeg_compression", severity)
    out = []
    for img in x8.permute(0, 2, 3, 1).cpu().numpy():
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=quality)
        with Image.open(buf) as im:
            out.append(np.asarray(im.convert("RGB")))
    return torch.as_tensor(np.stack(out), device=x8.device).permute(0, 3, 1, 2).float()


CORRUPTIONS = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "defocus_blur": blur.defocus_blur, "glass_blur": blur.glass_blur,
    "motion_blur": blur.motion_blur, "zoom_blur": blur.zoom_blur, "snow": weather.snow,
    "frost": weather.frost, "fog": weather.fog, "brightness": brightness, "contrast": contrast,
    "elastic_transform": blur.elastic_transform, "pixelate": pixelate,
    "jpeg_compression": jpeg_compression, "speckle_noise": speckle_noise,
    "gaussian_blur": blur.gaussian_blur, "spatter": weather.spatter, "saturate": saturate,
}
#: Every corruption this backend implements, in ImageNet-C's order (:data:`~imagenet_hard.corruptions.params.NAMES`).
NAMES_SUPPORTED: tuple[str, ...] = tuple(n for n in NAMES if n in CORRUPTIONS)


def _check(images, name: str, severity: int, seeds: Sequence[int]) -> None:
    if name not in CORRUPTIONS:
        raise unknown_name("corruption", name, NAMES_SUPPORTED)
    if isinstance(severity, bool) or severity not in (1, 2, 3, 4, 5):
        raise InvalidValueError(f"severity must be one of 1, 2, 3, 4, 5, got {severity!r}")
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 \
            or images.dim() != 4 or images.shape[-1] != 3:
        got = (f"{images.dtype} tensor of shape {tuple(images.shape)}"
               if isinstance(images, torch.Tensor) else type(images).__name__)
        raise InvalidValueError(f"images must be a uint8 tensor (N, H, W, 3), got {got}")
    if min(images.shape[1:3]) < MIN_SIDE:
        raise InvalidValueError(f"images must be at least {MIN_SIDE}×{MIN_SIDE} pixels, got "
                                f"{images.shape[2]}×{images.shape[1]}")
    if len(seeds) != images.shape[0]:
        raise InvalidValueError(f"one seed per image is needed: {images.shape[0]} images, "
                                f"{len(seeds)} seeds")


def corrupt_torch(images: torch.Tensor, name: str, severity: int, seeds: Sequence[int],
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """Corrupt uint8 images (N, H, W, 3) with ``name`` at ``severity`` (1..5), image i seeded by
    ``seeds[i]``; returns uint8 (N, H, W, 3) on ``device``."""
    _check(images, name, severity, seeds)
    device = torch.device(device)
    # CPU generators whatever the device: the same seed gives the same table on any card.
    gens = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    x8 = images.to(device).permute(0, 3, 1, 2)
    with torch.no_grad():
        out = CORRUPTIONS[name](x8, severity, gens)
        # the reference truncates its float result with np.uint8
        out = out.clamp_(0, 255).floor_().to(torch.uint8)
    return out.permute(0, 2, 3, 1).contiguous()
