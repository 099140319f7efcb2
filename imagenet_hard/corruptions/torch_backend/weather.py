"""The torch backend's weather corruptions: snow, frost, fog and spatter.

Same contract as :mod:`._torch_blur`. Frost photos are read at run time from the installed
``imagecorruptions`` package's data, never copied here. Spatter's water branch reproduces the
reference's OpenCV chain (Canny, chamfer distance transform, histogram equalisation, emboss) as
whole-image tensor operations.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

from ..params import param
from . import filters as flt
from .blur import rand, randn, uniform, unit

FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
#: OpenCV's RGB → grey weights.
GREY = (0.299, 0.587, 0.114)


def randint(gen: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high, (), generator=gen, device=gen.device).item())


# ---- snow ----

def snow(x8, severity, gens):
    mean, std = param("snow", severity)[:2]
    _, _, h, w = x8.shape
    layers, angles = [], []
    for gen in gens:
        layers.append(randn((h, w), gen, x8.device).mul_(std).add_(mean))
        angles.append(uniform(gen, -135, -45))
    return snow_from(x8, severity, torch.stack(layers), angles)


def snow_from(x8, severity, layers: torch.Tensor, angles) -> torch.Tensor:
    """Snow from its random draws: Gaussian layers (N, H, W) of the severity's mean and σ, and
    one fall angle in degrees per image."""
    _, _, zoom, threshold, radius, sigma, keep = param("snow", severity)
    _, _, h, w = x8.shape
    x = unit(x8)
    grey = sum(wt * x[:, i:i + 1] for i, wt in enumerate(GREY))
    x = keep * x + (1 - keep) * torch.maximum(x, grey * 1.5 + 0.5)
    flakes = []
    for layer, angle in zip(layers, angles, strict=True):
        # the zoomed layer keeps its full size (≥ the image) until after the motion blur
        layer = flt.clipped_zoom(layer, zoom, crop_to_input=False)
        layer = torch.where(layer < threshold, 0.0, layer).clamp_(0, 1)
        layer = flt.motion_blur(layer, radius, sigma, angle)
        flakes.append(layer.mul_(255).round_().div_(255)[:h, :w])
    flake = torch.stack(flakes).unsqueeze(1)
    return (x + flake + flake.flip(-2, -1)).clamp_(0, 1).mul_(255)


# ---- frost ----

@functools.lru_cache(maxsize=len(FROST_FILES))
def frost_photo(index: int) -> np.ndarray:
    """Frost photo ``index`` (0..5) of the installed reference package, RGB uint8."""
    from PIL import Image

    ref = resources.files("imagecorruptions").joinpath("frost", FROST_FILES[index])
    with resources.as_file(ref) as path, Image.open(path) as im:
        return np.array(im.convert("RGB"))


@functools.lru_cache(maxsize=256)
def frost_size(index: int, h: int, w: int) -> tuple[int, int]:
    """Size of frost photo ``index`` scaled as the reference does for an h×w image: 1.1 × the
    smallest factor that makes it cover the image (1 if it already does)."""
    fh, fw = frost_photo(index).shape[:2]
    scale = 1.0
    if fh < h or fw < w:
        scale = max(h / fh if fh < h else 0.0, w / fw if fw < w else 0.0)
    scale *= 1.1
    return int(np.ceil(fh * scale)), int(np.ceil(fw * scale))


def frost_layer(index: int, h: int, w: int, device) -> torch.Tensor:
    """Frost photo ``index`` at :func:`frost_size`, bicubic, rounded to 8 bits, (3, H', W')."""
    t = torch.as_tensor(frost_photo(index), device=device).permute(2, 0, 1).unsqueeze(0)
    t = F.interpolate(t.to(torch.float32), size=frost_size(index, h, w), mode="bicubic",
                      align_corners=False)
    return t[0].round_().clamp_(0, 255)


def frost(x8, severity, gens):
    _, _, h, w = x8.shape
    picks = []
    for gen in gens:
        index = randint(gen, 0, len(FROST_FILES))
        fh, fw = frost_size(index, h, w)
        picks.append((index, randint(gen, 0, fh - h), randint(gen, 0, fw - w)))
    return frost_from(x8, severity, picks)


def frost_from(x8, severity, picks) -> torch.Tensor:
    """Frost from its random draws: (photo index, top, left) of the crop for each image."""
    image_weight, frost_weight = param("frost", severity)
    _, _, h, w = x8.shape
    scaled = {}  # per call only: a full-resolution frost layer is large
    crops = []
    for index, top, left in picks:
        if index not in scaled:
            scaled[index] = frost_layer(index, h, w, x8.device)
        crops.append(scaled[index][:, top:top + h, left:left + w])
    out = image_weight * x8.to(torch.float32) + frost_weight * torch.stack(crops)
    return out.clamp_(0, 255)


# ---- fog ----

def plasma_fractal(size: int, decay: float, gen: torch.Generator, device=None) -> torch.Tensor:
    """Diamond-square height map of side ``size`` (a power of two), scaled to [0, 1], on
    ``device`` (default the generator's); the random offsets start at ±100² and shrink by
    ``decay`` per octave, as in the reference, drawn on the CPU."""
    device = gen.device if device is None else torch.device(device)
    m = torch.zeros((size, size), device=device)
    step, wibble = size, 100.0

    def wibbled(total: torch.Tensor) -> torch.Tensor:
        noise = rand(total.shape, gen, device)
        return total / 4 + wibble * (noise * (2 * wibble) - wibble)

    while step >= 2:
        half = step // 2
        corners = m[0::step, 0::step]
        square = corners + corners.roll(-1, 0)
        m[half::step, half::step] = wibbled(square + square.roll(-1, 1))
        centres, corners = m[half::step, half::step], m[0::step, 0::step]
        m[0::step, half::step] = wibbled(centres + centres.roll(1, 0)
                                         + corners + corners.roll(-1, 1))
        m[half::step, 0::step] = wibbled(centres + centres.roll(1, 1)
                                         + corners + corners.roll(-1, 0))
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


def fog(x8, severity, gens):
    decay = param("fog", severity)[1]
    _, _, h, w = x8.shape
    size = 1 << (max(h, w) - 1).bit_length()
    return fog_from(x8, severity, torch.stack([plasma_fractal(size, decay, g, x8.device)
                                               for g in gens]))


def fog_from(x8, severity, haze: torch.Tensor) -> torch.Tensor:
    """Fog from its random draw: one plasma fractal (N, S, S) per image, S ≥ the image sides."""
    strength = param("fog", severity)[0]
    _, _, h, w = x8.shape
    x = unit(x8)
    top = x.amax((1, 2, 3), keepdim=True)
    haze = haze[:, None, :h, :w]
    return ((x + strength * haze) * top / (top + strength)).clamp_(0, 1).mul_(255)


# ---- spatter ----

def spatter(x8, severity, gens):
    mean, std = param("spatter", severity)[:2]
    _, _, h, w = x8.shape
    liquid = torch.stack([randn((h, w), g, x8.device) for g in gens])
    return spatter_from(x8, severity, liquid.mul_(std).add_(mean))


def spatter_from(x8, severity, liquid: torch.Tensor) -> torch.Tensor:
    """Spatter from its random draw: Gaussian layers (N, H, W) of the severity's mean and σ."""
    _, _, sigma, threshold, strength, mud = param("spatter", severity)
    x = unit(x8)
    liquid = flt.gaussian(liquid, sigma)
    liquid = torch.where(liquid < threshold, 0.0, liquid)
    if mud:
        m = flt.gaussian((liquid > threshold).to(torch.float32), strength)
        m = torch.where(m < 0.8, 0.0, m).unsqueeze(1)
        brown = torch.tensor((63, 42, 20), device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
        return (x * (1 - m) + brown / 255 * m).clamp_(0, 1).mul_(255)
    m = water_mask(liquid) * strength
    turquoise = torch.tensor((175, 238, 238), device=x.device, dtype=torch.float32)
    return (x + m.unsqueeze(1) * (turquoise / 255).view(1, 3, 1, 1)).clamp_(0, 1).mul_(255)


def water_mask(liquid: torch.Tensor) -> torch.Tensor:
    """The reference's water-drop shading of a thresholded liquid layer (N, H, W), scaled to a
    maximum of 1: distance to the drops' Canny edges (capped at 20), equalised, embossed."""
    level = (liquid * 255).floor_().clamp_(0, 255)
    dist = chamfer_distance(canny(level, 50, 150), 20.0)
    dist = box3_mean(dist.double()).floor_()
    dist = equalize_hist(dist)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)
    dist = correlate3x3(dist, emboss).clamp_(0, 255)
    dist = box3_mean(dist).round_()
    m = (level.double() * dist).to(torch.float32)
    return m / m.amax((1, 2), keepdim=True)


def box3_mean(x: torch.Tensor) -> torch.Tensor:
    return correlate3x3(x, np.ones((3, 3))) / 9


def correlate3x3(x: torch.Tensor, kernel: np.ndarray, mode: str = "reflect101"):
    h, w = x.shape[-2:]
    xp = flt.pad2d(x, 1, 1, 1, 1, mode)
    out = torch.zeros_like(x)
    for i in range(3):
        for j in range(3):
            if kernel[i, j]:
                out.add_(xp[..., i:i + h, j:j + w], alpha=float(kernel[i, j]))
    return out


def canny(img: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """OpenCV's ``Canny`` (3×3 Sobel, L1 magnitude) of integer-valued images (N, H, W)."""
    h, w = img.shape[-2:]
    gx = correlate3x3(img, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]), "nearest")
    gy = correlate3x3(img, np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]), "nearest")
    mag = gx.abs() + gy.abs()
    mp = F.pad(mag, (1, 1, 1, 1))  # the magnitude is 0 beyond the image

    def at(dy, dx):
        return mp[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    # OpenCV's fixed-point angle test: tan 22.5° in 1/2**15 units
    tg22 = 13573
    ax, ay = gx.abs().long(), gy.abs().long() << 15
    tg22x = ax * tg22
    horizontal = ay < tg22x
    vertical = ~horizontal & (ay > tg22x + (ax << 16))
    s = torch.where((gx < 0) != (gy < 0), -1, 1)
    diag = torch.where(s > 0, (mag > at(-1, -1)) & (mag > at(1, 1)),
                       (mag > at(-1, 1)) & (mag > at(1, -1)))
    peak = torch.where(horizontal, (mag > at(0, -1)) & (mag >= at(0, 1)),
                       torch.where(vertical, (mag > at(-1, 0)) & (mag >= at(1, 0)), diag))
    weak = peak & (mag > low)
    edges = weak & (mag > high)
    while True:  # hysteresis: grow the strong edges through 8-connected weak ones
        grown = weak & (F.max_pool2d(edges.unsqueeze(1).float(), 3, 1, 1).squeeze(1) > 0)
        if torch.equal(grown, edges):
            return edges
        edges = grown


#: OpenCV's 5×5 chamfer weights for DIST_L2: axial, diagonal, knight's move.
CHAMFER = (1.0, 1.4, 2.1969)


def chamfer_distance(zero: torch.Tensor, cap: float) -> torch.Tensor:
    """OpenCV ``distanceTransform(DIST_L2, 5)`` to the nearest ``zero`` pixel, capped at ``cap``
    (what the reference's ``THRESH_TRUNC`` keeps): relaxation over the 16 mask moves."""
    a, b, c = CHAMFER
    moves = [(0, 1, a), (1, 0, a), (1, 1, b), (1, -1, b),
             (1, 2, c), (2, 1, c), (2, -1, c), (1, -2, c)]
    moves += [(-dy, -dx, wt) for dy, dx, wt in moves]
    h, w = zero.shape[-2:]
    d = torch.where(zero, 0.0, cap)
    while True:
        dp = F.pad(d, (2, 2, 2, 2), value=cap)
        new = d
        for dy, dx, wt in moves:
            new = torch.minimum(new, dp[..., 2 + dy:2 + dy + h, 2 + dx:2 + dx + w] + wt)
        if torch.equal(new, d):
            return d
        d = new


def equalize_hist(img: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``equalizeHist`` per image of integer-valued images (N, H, W) in 0..255."""
    n = img.shape[0]
    flat = img.reshape(n, -1).long()
    total = flat.shape[1]
    hist = torch.zeros((n, 256), dtype=torch.int64, device=img.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    first = (hist > 0).to(torch.int8).argmax(1, keepdim=True)
    first_count = hist.gather(1, first)
    scale = (255.0 / (total - first_count).clamp_min(1)).to(torch.float32)
    lut = ((hist.cumsum(1) - first_count).to(torch.float32) * scale).round_()
    levels = torch.arange(256, device=img.device).unsqueeze(0)
    lut = torch.where(levels > first, lut, 0.0)
    lut = torch.where(first_count == total, levels.to(torch.float32), lut)  # one grey level
    return lut.gather(1, flat).reshape(img.shape).to(img.dtype)
