"""The torch backend's blurs: gaussian, glass, defocus, motion, zoom, and the elastic warp.

Each ``fn(x8, severity, gens)`` takes uint8 images (N, 3, H, W) and one seeded generator per image
and returns float images on the 0..255 scale, already clipped; the caller truncates to uint8 as
the reference's ``np.uint8`` does.
"""

from __future__ import annotations

import numpy as np
import torch

from ..params import param, zoom_factors
from . import filters as flt


def unit(x8: torch.Tensor) -> torch.Tensor:
    return x8.to(torch.float32).div_(255)


def rand(shape, gen: torch.Generator, device, **kw) -> torch.Tensor:
    """``torch.rand`` drawn on the CPU from ``gen`` (a CPU generator), then moved to ``device``:
    CUDA generators' streams differ from the CPU's and between GPU models, so drawing on the
    device would tie a table to the card that made it."""
    return torch.rand(shape, generator=gen, **kw).to(device, non_blocking=True)


def randn(shape, gen: torch.Generator, device, **kw) -> torch.Tensor:
    """``torch.randn`` drawn on the CPU from ``gen``, then moved to ``device`` (see :func:`rand`)."""
    return torch.randn(shape, generator=gen, **kw).to(device, non_blocking=True)


def uniform(gen: torch.Generator, low: float, high: float) -> float:
    """One U(low, high) draw from ``gen`` (on its own device), as a Python float."""
    u = torch.rand((), generator=gen, device=gen.device, dtype=torch.float64).item()
    return low + (high - low) * u


def gaussian_blur(x8, severity, gens):
    x = flt.gaussian(unit(x8), param("gaussian_blur", severity))
    return x.clamp_(0, 1).mul_(255)


def disk_kernel(radius: int, alias_blur: float) -> np.ndarray:
    """The reference's defocus kernel: a normalised disk on a grid of at least 17×17, smoothed by a
    3×3 (radius ≤ 8) or 5×5 Gaussian of σ ``alias_blur`` with OpenCV's mirrored border."""
    side, ksize = (8, 3) if radius <= 8 else (radius, 5)
    grid = np.arange(-side, side + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx ** 2 + yy ** 2 <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    t = np.arange(ksize) - (ksize - 1) / 2
    g = np.exp(-t ** 2 / (2 * alias_blur ** 2))
    g /= g.sum()
    r = ksize // 2
    size = len(grid)
    padded = np.pad(disk, r, mode="reflect")  # numpy's reflect is OpenCV's BORDER_REFLECT_101
    rows = sum(g[i] * padded[i:i + size] for i in range(ksize))
    out = sum(g[i] * rows[:, i:i + size] for i in range(ksize))
    return out.astype(np.float32).astype(np.float64)  # the reference's kernel is float32


def defocus_blur(x8, severity, gens):
    radius, alias = param("defocus_blur", severity)
    x = flt.correlate2d_fft(unit(x8), disk_kernel(radius, alias), "reflect101")
    return x.clamp_(0, 1).mul_(255)


def glass_sources(h: int, w: int, delta: int, gen: torch.Generator, device=None) -> torch.Tensor:
    """Flat source index of every pixel after one pass of the reference's local "swap".

    The reference walks the pixels from the bottom-right corner, row by row, and assigns to each
    pixel p of the inner region the *current* value at p + d, d uniform in [-δ, δ)² (its tuple
    swap of array views copies rather than swaps). If p + d was visited before (it lies later in
    raster order, inside the region), that current value is p + d's own result, so sources chain;
    pointer doubling follows every chain to its end at once.
    """
    dev = gen.device if device is None else torch.device(device)
    rows = torch.arange(h, device=dev).view(h, 1)
    cols = torch.arange(w, device=dev).view(1, w)
    inside = (rows > delta) & (rows <= h - delta) & (cols > delta) & (cols <= w - delta)
    d = torch.randint(-delta, delta, (2, h, w), generator=gen).to(dev, non_blocking=True)
    here = (rows * w + cols).flatten()
    there = (torch.where(inside, rows + d[0], rows) * w + torch.where(inside, cols + d[1], cols))
    there = there.flatten()
    inside = inside.flatten()
    chained = inside & inside[there] & (there > here)
    nxt = torch.where(chained, there, here)
    while True:
        jumped = nxt[nxt]
        if torch.equal(jumped, nxt):
            return there[nxt]
        nxt = jumped


def glass_blur(x8, severity, gens):
    sigma, delta, iterations = param("glass_blur", severity)
    n, c, h, w = x8.shape
    x = flt.gaussian(unit(x8), sigma).mul_(255).floor_()
    src = []
    for gen in gens:
        total = torch.arange(h * w, device=x.device)
        for _ in range(iterations):
            total = total[glass_sources(h, w, delta, gen, x.device)]
        src.append(total)
    idx = torch.stack(src).unsqueeze(1).expand(n, c, h * w)
    x = x.reshape(n, c, h * w).gather(2, idx).reshape(n, c, h, w)
    return flt.gaussian(x.div_(255), sigma).clamp_(0, 1).mul_(255)


def motion_blur(x8, severity, gens):
    return motion_blur_at(x8, severity, [uniform(g, -45, 45) for g in gens])


def motion_blur_at(x8, severity, angles) -> torch.Tensor:
    """Motion blur from its random draw: one angle in degrees per image."""
    radius, sigma = param("motion_blur", severity)
    x = x8.to(torch.float32)
    out = [flt.motion_blur(x[i], radius, sigma, angle) for i, angle in enumerate(angles)]
    return torch.stack(out).clamp_(0, 255)


def zoom_blur(x8, severity, gens):
    factors = zoom_factors(severity)
    # channels-last makes torch's bilinear resize several times faster on the CPU
    x = unit(x8).contiguous(memory_format=torch.channels_last)
    out = x.clone()
    for factor in factors:
        out += flt.clipped_zoom(x, factor)
    return out.div_(len(factors) + 1).clamp_(0, 1).mul_(255)


def elastic_transform(x8, severity, gens):
    _, _, h, w = x8.shape
    amp = h * 0.005
    noise = torch.stack([
        rand((2, h, w), g, x8.device).mul_(2 * amp).sub_(amp)
        for g in gens])
    return elastic_from(x8, severity, noise)


def elastic_from(x8, severity, noise: torch.Tensor) -> torch.Tensor:
    """Elastic warp from its random draw: uniform noise (N, 2, H, W) in ±0.5% of the height
    (horizontal first). The noise is blurred with σ 1% of each side (mirrored border, 3σ
    support) and scaled by the severity's α into a displacement field, sampled bilinearly."""
    alpha = param("elastic_transform", severity)
    _, _, h, w = x8.shape
    field = flt.gaussian(noise, (h * 0.01, w * 0.01), mode="symmetric", truncate=3).mul_(alpha)
    out = flt.warp_symmetric(unit(x8), field[:, 1], field[:, 0])
    return out.clamp_(0, 1).mul_(255)
