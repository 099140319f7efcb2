"""Filtering and resampling primitives of the torch corruption backend.

Everything works on float or integer tensors shaped ``(..., H, W)`` on any device and loops only
over filter taps, never over pixels. Boundary modes carry the names of the libraries whose
behaviour they reproduce: ``nearest`` (edge pixel repeated; scipy ``nearest``, OpenCV
``BORDER_REPLICATE``), ``symmetric`` (edge pixel included in the mirror; scipy ``reflect``) and
``reflect101`` (edge pixel not repeated; OpenCV's default border, torch's ``reflect``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

#: Kernels longer than this are applied through an FFT instead of a loop over taps.
FFT_TAPS = 24
#: Fixed-point precision of Pillow's 8-bit resampling (32 bits minus 8 for the value, 2 spare).
PIL_PRECISION_BITS = 22


def pad_index(n: int, before: int, after: int, mode: str, device) -> torch.Tensor:
    """Source index of each position ``-before .. n + after - 1`` of an axis of length ``n``."""
    i = torch.arange(-before, n + after, device=device)
    if mode == "nearest":
        return i.clamp(0, n - 1)
    if mode == "symmetric":
        i = i.remainder(2 * n)
        return torch.where(i >= n, 2 * n - 1 - i, i)
    if mode == "reflect101":
        if n == 1:
            return torch.zeros_like(i)
        i = i.remainder(2 * n - 2)
        return torch.where(i >= n, 2 * n - 2 - i, i)
    raise ValueError(f"unknown boundary mode {mode!r}")


def pad_axis(x: torch.Tensor, dim: int, before: int, after: int, mode: str) -> torch.Tensor:
    if before == 0 and after == 0:
        return x
    return x.index_select(dim, pad_index(x.shape[dim], before, after, mode, x.device))


def pad2d(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str):
    return pad_axis(pad_axis(x, -2, top, bottom, mode), -1, left, right, mode)


def good_fft_size(n: int) -> int:
    """The smallest length ≥ ``n`` whose only prime factors are 2, 3 and 5 (fast FFTs)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def gaussian_kernel1d(sigma: float, truncate: float) -> np.ndarray:
    """scipy's sampled Gaussian: radius ``int(truncate·σ + 0.5)``, normalised to sum 1."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / float(sigma) ** 2 * x ** 2)
    return phi / phi.sum()


def correlate1d(x: torch.Tensor, kernel: np.ndarray, dim: int, mode: str) -> torch.Tensor:
    """Correlate axis ``dim`` of ``x`` with an odd-length, centred ``kernel``; same size out."""
    k = len(kernel)
    r = k // 2
    n = x.shape[dim]
    xp = pad_axis(x, dim, r, r, mode)
    if k > FFT_TAPS:
        return _correlate1d_fft(xp, kernel, dim, n)
    out = xp.narrow(dim, 0, n) * float(kernel[0])
    for t in range(1, k):
        out.add_(xp.narrow(dim, t, n), alpha=float(kernel[t]))
    return out


def _correlate1d_fft(xp: torch.Tensor, kernel: np.ndarray, dim: int, n: int) -> torch.Tensor:
    k = len(kernel)
    length = good_fft_size(xp.shape[dim])
    kf = torch.as_tensor(np.ascontiguousarray(kernel[::-1]), dtype=xp.dtype, device=xp.device)
    shape = [1] * xp.dim()
    shape[dim] = -1
    spec = torch.fft.rfft(xp, n=length, dim=dim) * torch.fft.rfft(kf, n=length).reshape(shape)
    return torch.fft.irfft(spec, n=length, dim=dim).narrow(dim, k - 1, n)


def gaussian(x: torch.Tensor, sigma, mode: str = "nearest", truncate: float = 4.0):
    """scipy/scikit-image ``gaussian`` over the last two axes; ``sigma`` a number or (σy, σx)."""
    sy, sx = (sigma, sigma) if np.isscalar(sigma) else sigma
    x = correlate1d(x, gaussian_kernel1d(sy, truncate), -2, mode)
    return correlate1d(x, gaussian_kernel1d(sx, truncate), -1, mode)


def correlate2d_fft(x: torch.Tensor, kernel: np.ndarray, mode: str) -> torch.Tensor:
    """Correlate the last two axes with an odd-sized 2-D ``kernel`` through one FFT."""
    kh, kw = kernel.shape
    h, w = x.shape[-2:]
    xp = pad2d(x, kh // 2, kh // 2, kw // 2, kw // 2, mode)
    size = (good_fft_size(xp.shape[-2]), good_fft_size(xp.shape[-1]))
    kf = torch.as_tensor(np.ascontiguousarray(kernel[::-1, ::-1]), dtype=x.dtype, device=x.device)
    spec = torch.fft.rfft2(xp, s=size) * torch.fft.rfft2(kf, s=size)
    out = torch.fft.irfft2(spec, s=size)
    return out[..., kh - 1:kh - 1 + h, kw - 1:kw - 1 + w]


# ---- zoom ----

def clipped_zoom(x: torch.Tensor, factor: float, crop_to_input: bool = True) -> torch.Tensor:
    """The reference's ``clipped_zoom`` of (N, C, H, W) or (H, W) images: a centred crop of
    ``ceil(side / factor)`` pixels zoomed by ``factor`` to ``round(crop · factor)`` pixels
    (bilinear, corners aligned, as scipy's order-1 ``zoom``), then cropped back to the input size
    when ``crop_to_input``, as ``zoom_blur`` does."""
    h, w = x.shape[-2:]
    crop_h, crop_w = int(np.ceil(h / float(factor))), int(np.ceil(w / float(factor)))
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    size = (int(round(crop_h * factor)), int(round(crop_w * factor)))
    crop = x[..., top:top + crop_h, left:left + crop_w]
    out = F.interpolate(crop if x.dim() == 4 else crop[None, None], size=size,
                        mode="bilinear", align_corners=True)
    out = out if x.dim() == 4 else out[0, 0]
    return out[..., :h, :w] if crop_to_input else out


# ---- motion blur (the reference's sum of edge-replicated shifts along a line) ----

def motion_taps(radius: int, sigma: float, angle: float, shape: tuple[int, int]):
    """(weight, dy, dx) of each shift the reference sums; stops where a shift leaves the image."""
    width = 2 * radius + 1
    k = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
    k = k / k.sum()
    py, px = width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle))
    hyp = math.hypot(py, px)
    taps = []
    for i in range(width):
        dy = -math.ceil(i * py / hyp - 0.5)
        dx = -math.ceil(i * px / hyp - 0.5)
        if abs(dy) >= shape[0] or abs(dx) >= shape[1]:
            break
        taps.append((float(k[i]), dy, dx))
    return taps


def motion_blur(x: torch.Tensor, radius: int, sigma: float, angle: float) -> torch.Tensor:
    """Blur the last two axes along ``angle`` (degrees) with the reference's one-sided Gaussian
    line kernel; pixels beyond the border repeat the edge."""
    h, w = x.shape[-2:]
    taps = motion_taps(radius, sigma, angle, (h, w))
    m = max(max(abs(dy), abs(dx)) for _, dy, dx in taps)
    xp = pad2d(x, m, m, m, m, "nearest")
    out = torch.zeros_like(x)
    for weight, dy, dx in taps:
        out.add_(xp[..., m - dy:m - dy + h, m - dx:m - dx + w], alpha=weight)
    return out


# ---- Pillow's 8-bit resampling, reproduced in integer arithmetic ----

def pil_box_coefficients(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """First source index and fixed-point weights of Pillow's BOX filter for each output pixel
    (``precompute_coeffs`` then ``normalize_coeffs_8bpc``)."""
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    center = (np.arange(n_out) + 0.5) * scale
    xmin = np.maximum((center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum((center + support + 0.5).astype(np.int64), n_in) - xmin
    t = np.arange(ksize)
    arg = (t[None, :] + xmin[:, None] - center[:, None] + 0.5) * (1.0 / filterscale)
    weights = ((arg > -0.5) & (arg <= 0.5) & (t[None, :] < xmax[:, None])).astype(np.float64)
    weights /= weights.sum(1, keepdims=True)
    fixed = (0.5 + weights * (1 << PIL_PRECISION_BITS)).astype(np.int64)
    return xmin, fixed


def pil_box_axis(x: torch.Tensor, dim: int, n_out: int) -> torch.Tensor:
    """One pass of Pillow's BOX resize of an int tensor (values 0..255) along ``dim``."""
    n_in = x.shape[dim]
    xmin, fixed = pil_box_coefficients(n_in, n_out)
    shape = [1] * x.dim()
    shape[dim] = -1
    # 255 · 2**22 plus rounding fits in int32
    acc = torch.full((), 1 << (PIL_PRECISION_BITS - 1), dtype=torch.int32, device=x.device)
    for t in range(fixed.shape[1]):
        if not fixed[:, t].any():
            continue
        idx = torch.as_tensor(np.minimum(xmin + t, n_in - 1), device=x.device)
        k = torch.as_tensor(fixed[:, t], dtype=torch.int32, device=x.device).reshape(shape)
        acc = acc + x.index_select(dim, idx) * k
    return (acc >> PIL_PRECISION_BITS).clamp_(0, 255)


def pil_nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output pixel of Pillow's NEAREST resize (its running float sum)."""
    step = n_in / n_out
    pos = np.cumsum(np.concatenate([[step * 0.5], np.full(n_out - 1, step)]))
    return np.minimum(pos.astype(np.int64), n_in - 1)


# ---- warping ----

def warp_symmetric(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``x`` (N, C, H, W) at ``(row + dy, col + dx)`` (``dy``, ``dx`` of shape
    (N, H, W)), mirrored about the outer pixel edges beyond the border."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    # grid_sample's normalised coordinates with align_corners=False put pixel centres at i + 0.5
    gy = (2 * (rows + dy) + 1) / h - 1
    gx = (2 * (cols + dx) + 1) / w - 1
    grid = torch.stack([gx, gy], dim=-1).expand(n, h, w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)
