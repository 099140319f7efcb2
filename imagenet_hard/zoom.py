"""The 324 zoom transforms of the paper (appendix A): naming, the pixel-exact CPU path, a GPU path.

A transform is a scale ``S`` (36 of them) and an anchor ``(i, j)`` on a 3×3 grid: resize the image
so its shorter side is ``S`` (PIL bicubic; long side ``int(S * long / short)`` as torchvision's
``Resize`` computes it), then take the 224×224 box centred on the anchor, zero outside the image.
Index ``9*s + 3*i + j``, scale-major in :data:`SCALES` order.

:func:`zoom_crops` is pixel-identical to the paper's reference code (``transforms.Resize`` +
``crop_at`` on a PIL image, per anchor) but resizes at most once per scale (at large scales only
the rows and columns the crops use, through PIL's own two passes) and copies uint8 crops out of
the result, without a PIL call per crop. One CPU thread, 9 sample photos: 11x the reference's
crops/s (``imhard bench zoom --images 9``); resizing is ~85 % of its time, so ~9-11x is about the
ceiling for a PIL-exact path against a reference whose cost is 324 full resizes.

:func:`zoom_crops_torch` resizes on a torch device instead (``interpolate(mode="bicubic",
antialias=True)``, PIL's a = -0.5 kernel, as two 1-D passes rounded and clamped to uint8 in between
like PIL) and cuts the crops of a scale with one gather. It is *not* pixel-identical: float
coefficients against PIL's 22-bit fixed point. Measured on the nine sample photos, all 324 crops
each (``imagenet_hard.bench.zoom.zoom_torch_agreement``; ``tests/test_zoom.py`` checks the bounds)::

    max |torch - PIL|   2 grey levels
    mean |torch - PIL|  0.00024 grey levels (0.024 % of pixels differ, by 1 or 2)
    crops with any differing pixel: 2,148 of 2,916
    EfficientNet-Lite0 top-1 changes on 2 of 2,916 crops (0.07 %)

Without the intermediate clamp the differences reach 18 grey levels and 4.4 % of top-1 answers
change (bicubic overshoot at hard edges). A 1-D pass that shrinks more than :data:`MAX_AA_SHRINK`
times (S=10 on an image whose short side is over 320 px) is not an ``interpolate`` call: CUDA's
antialiased kernel keeps the filter weights in shared memory and refuses factors above ~91×. It is
the same linear map, applied as a matrix product in float64 with the weights ``interpolate``
computes (PIL's a = -0.5 cubic, support 2 × factor); ``tests/test_zoom_torch.py`` checks it
against CPU ``interpolate`` (at most 1 grey level after rounding) and against PIL (the 2 above). Use the exact path wherever the verdicts must equal the
paper's; the torch path is the GPU fast path.

:func:`reference_crops` is the paper's procedure itself, kept as the oracle the tests compare with
and the reference ``imhard bench zoom`` and ``imhard bench mine`` time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import InvalidValueError
from .pixels import to_rgb

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

#: The 36 zoom scales of appendix A.2, in transform order.
SCALES: tuple[int, ...] = (
    10, 16, 32, 48, 64, 96, 122, 128, 192, 224, 235, 240, 256, 288, 320, 348, 384, 448, 460, 512,
    573, 576, 640, 664, 672, 680, 686, 690, 700, 720, 768, 798, 832, 896, 911, 1024,
)
CROP = 224
GRID = 3
#: Largest shrink factor of one resize pass given to ``interpolate``; larger ones use a weight
#: matrix (module docstring). CUDA's antialiased kernel fails above ~91×.
MAX_AA_SHRINK = 32
N_TRANSFORMS = len(SCALES) * GRID * GRID  # 324
GROUPS = ("zoom-out", "zoom-224", "zoom-in")
_SCALE_POS = {s: k for k, s in enumerate(SCALES)}


@dataclass(frozen=True)
class Transform:
    """One of the 324 zoom transforms: its scale, anchor row and column, and zoom group."""

    scale: int
    row: int
    col: int
    group: str

    @property
    def index(self) -> int:
        return transform_index(self.scale, self.row, self.col)

    def __str__(self) -> str:
        return f"S={self.scale} ({self.row},{self.col})"


def scale_group(scale: int) -> str:
    """``zoom-out`` below 224, ``zoom-224`` at 224, ``zoom-in`` above."""
    return "zoom-out" if scale < CROP else "zoom-224" if scale == CROP else "zoom-in"


def transform_index(scale: int, row: int, col: int) -> int:
    """Index 0..323 of scale ``scale`` (one of :data:`SCALES`) and anchor (``row``, ``col``)."""
    if scale not in _SCALE_POS:
        raise InvalidValueError(f"{scale} is not one of the 36 zoom scales: {SCALES}")
    if not (0 <= row < GRID and 0 <= col < GRID):
        raise InvalidValueError(f"anchor ({row}, {col}) is outside the 3×3 grid (0..2, 0..2)")
    return GRID * GRID * _SCALE_POS[scale] + GRID * row + col


def transform_info(index: int) -> Transform:
    """Name transform ``index`` (0..323)."""
    index = int(index)
    if not 0 <= index < N_TRANSFORMS:
        raise InvalidValueError(f"transform index must be in 0..{N_TRANSFORMS - 1}, got {index}")
    s, rest = divmod(index, GRID * GRID)
    row, col = divmod(rest, GRID)
    return Transform(SCALES[s], row, col, scale_group(SCALES[s]))


#: Transform (S=256, i=1, j=1). It equals the standard 1-crop (resize 256, centre crop 224) only
#: when the image's sides are close to multiples of 3 apart; :func:`standard_crop` is that one.
STANDARD_CROP_INDEX = transform_index(256, 1, 1)


def group_mask(group: str) -> np.ndarray:
    """Boolean mask over the 324 transforms selecting one zoom group."""
    if group not in GROUPS:
        raise InvalidValueError(f"unknown zoom group {group!r}; known: {', '.join(GROUPS)}")
    per_scale = np.array([scale_group(s) == group for s in SCALES])
    return np.repeat(per_scale, GRID * GRID)


def group_indices(group: str) -> tuple[int, ...]:
    return tuple(int(i) for i in np.flatnonzero(group_mask(group)))


def resized_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """(width, height) after resizing the shorter side to ``scale`` (torchvision's arithmetic)."""
    if width <= height:
        return scale, int(scale * height / width)
    return int(scale * width / height), scale


def anchor_boxes(width: int, height: int) -> list[tuple[int, int]]:
    """Top-left (top, left) of the 9 crops on a resized ``width``×``height`` image, row-major."""
    tw, th = width // GRID, height // GRID
    return [(i * th + th // 2 - CROP // 2, j * tw + tw // 2 - CROP // 2)
            for i in range(GRID) for j in range(GRID)]


def _check_indices(indices: Sequence[int] | None) -> list[int]:
    if indices is None:
        return list(range(N_TRANSFORMS))
    out = [int(i) for i in indices]
    bad = [i for i in out if not 0 <= i < N_TRANSFORMS]
    if bad:
        raise InvalidValueError(f"transform indices must be in 0..{N_TRANSFORMS - 1}, got {bad[:5]}")
    return out


def _by_scale(indices: list[int]) -> dict[int, list[tuple[int, int]]]:
    """scale position → [(output position, anchor 0..8)], keeping the caller's order."""
    plan: dict[int, list[tuple[int, int]]] = {}
    for pos, index in enumerate(indices):
        s, anchor = divmod(index, GRID * GRID)
        plan.setdefault(s, []).append((pos, anchor))
    return plan


def zoom_crops(image: Image.Image, indices: Sequence[int] | None = None) -> torch.Tensor:
    """The zoom crops of ``image`` as uint8 (K, 3, 224, 224), pixel-identical to the reference.

    ``indices`` (default: all 324, in order) selects and orders the transforms; only the scales
    they use are resized, so early-exit rounds pay only for what they ask. The tensor is
    channels_last in memory (an NCHW view of NHWC storage); ``.contiguous()`` if you need NCHW.
    """
    import torch

    wanted = _check_indices(indices)
    rgb = to_rgb(image)
    rgb.load()
    # Crops are cut as HWC rows (contiguous copies) and returned as an NCHW view of that memory,
    # i.e. a channels_last tensor: same values and shape, no transpose pass.
    out = np.zeros((len(wanted), CROP, CROP, 3), dtype=np.uint8)
    for s, jobs in _by_scale(wanted).items():
        _cut_scale(rgb, resized_size(rgb.width, rgb.height, SCALES[s]), jobs, out)
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def _cut_scale(rgb: Image.Image, size: tuple[int, int], jobs: list[tuple[int, int]],
               out: np.ndarray) -> None:
    """The crops ``jobs`` of ``rgb`` resized to ``size``, exactly as one PIL bicubic resize.

    PIL resizes in two 1-D passes, horizontal then vertical, with a uint8 image in between, and
    each line of a pass is independent of the others. So the horizontal pass runs only on the
    input rows the crops' output rows draw on, and the vertical pass only on the column bands the
    crops use; both are PIL resizes of strips with the full image's coefficients, so the pixels
    are PIL's own. This is what lets large scales cost well under a full resize. Tests check the
    identity against the paper's procedure.
    """
    from PIL import Image

    (nw, nh), (w, h) = size, rgb.size
    if (nw, nh) == (w, h):  # torchvision's Resize returns the image itself in this case
        _cut(np.asarray(rgb), 0, nw, jobs, out)
        return
    boxes = anchor_boxes(nw, nh)
    col_bands = _merge([(max(boxes[a][1], 0), min(boxes[a][1] + CROP, nw), (pos, a))
                        for pos, a in jobs])
    if nw == w or nh == h or sum(x1 - x0 for x0, x1, _ in col_bands) > 0.8 * nw:
        # The crops cover (nearly) every column: one full resize is cheapest.
        _cut(np.asarray(rgb.resize((nw, nh), Image.BICUBIC)), 0, nw, jobs, out)
        return
    hor = _horizontal_pass(rgb, nw, nh, boxes, jobs)
    for x0, x1, band_jobs in col_bands:
        strip = hor.crop((x0, 0, x1, h)).resize((x1 - x0, nh), Image.BICUBIC)
        _cut(np.asarray(strip), x0, nw, band_jobs, out)


def _horizontal_pass(rgb: Image.Image, nw: int, nh: int, boxes, jobs) -> Image.Image:
    """PIL's horizontal pass (width → ``nw``) on the input rows the vertical pass will read for
    the crops' output rows; other rows stay zero and are never read."""
    from PIL import Image

    w, h = rgb.size
    scale = h / nh
    support = 2.0 * max(scale, 1.0)  # bicubic support × PIL's filter scale
    spans = []
    for _pos, a in jobs:
        y0, y1 = max(boxes[a][0], 0), min(boxes[a][0] + CROP, nh)
        if y0 < y1:  # PIL's bounds for output rows y0 and y1 - 1, one row of margin each side
            r0 = int((y0 + 0.5) * scale - support + 0.5) - 1
            r1 = int((y1 - 0.5) * scale + support + 0.5) + 1
            spans.append((max(r0, 0), min(r1, h), None))
    bands = _merge(spans)
    if sum(r1 - r0 for r0, r1, _ in bands) > 0.9 * h:
        return rgb.resize((nw, h), Image.BICUBIC)
    hor = Image.new("RGB", (nw, h))
    for r0, r1, _ in bands:
        hor.paste(rgb.crop((0, r0, w, r1)).resize((nw, r1 - r0), Image.BICUBIC), (0, r0))
    return hor


def _merge(spans):
    """Merge (start, end, item) spans into disjoint bands [(start, end, [items])]; empty skipped."""
    bands: list[list] = []
    for start, end, item in sorted(spans, key=lambda t: (t[0], t[1])):
        if start >= end:
            continue  # a box that misses the image: its crop stays zero
        if bands and start <= bands[-1][1]:
            bands[-1][1] = max(bands[-1][1], end)
            bands[-1][2].append(item)
        else:
            bands.append([start, end, [item]])
    return [tuple(b) for b in bands]


def _cut(hwc: np.ndarray, x_off: int, width: int, jobs: list[tuple[int, int]],
         out: np.ndarray) -> None:
    """Copy crops ``jobs`` into ``out`` (N, 224, 224, 3), zero outside the image.

    ``hwc`` holds columns ``x_off`` … of a resized image ``width`` wide (all of it when 0/width).
    """
    h = hwc.shape[0]
    boxes = anchor_boxes(width, h)
    for pos, anchor in jobs:
        top, left = boxes[anchor]
        y0, y1 = max(top, 0), min(top + CROP, h)
        x0, x1 = max(left, 0), min(left + CROP, width)
        if y0 >= y1 or x0 >= x1:
            continue  # the box misses the image entirely: all zeros
        out[pos, y0 - top:y1 - top, x0 - left:x1 - left] = hwc[y0:y1, x0 - x_off:x1 - x_off]


def reference_crops(image: Image.Image) -> torch.Tensor:
    """The 324 crops as the paper's appendix A.1 code makes them: float (324, 3, 224, 224) in [0, 1].

    For every crop the whole image is resized again (torchvision ``Resize``, bicubic, on the PIL
    image), cut at the anchor with ``crop`` (zero outside) and turned into floats by
    ``ToTensor``. Slow by design; :func:`zoom_crops` equals ``round(255 * reference_crops)``.
    """
    import torch
    import torchvision.transforms as T
    import torchvision.transforms.functional as fv

    def crop_at(resized, i: int, j: int):
        width, height = resized.size
        tile_x, tile_y = width // GRID, height // GRID
        anchor_x, anchor_y = j * tile_x + tile_x // 2, i * tile_y + tile_y // 2
        return fv.crop(resized, anchor_y - CROP // 2, anchor_x - CROP // 2, CROP, CROP)

    image = image.convert("RGB")
    crops = []
    for scale in SCALES:
        resize = T.Resize(scale, interpolation=T.InterpolationMode.BICUBIC, max_size=None,
                          antialias=None)
        for i in range(GRID):
            for j in range(GRID):
                crops.append(fv.to_tensor(crop_at(resize(image), i, j)))
    return torch.stack(crops)


def standard_crop(image: Image.Image) -> torch.Tensor:
    """The standard 1-crop (resize shorter side to 256 bicubic, centre crop 224) as uint8 (3,224,224).

    Distinct from transform :data:`STANDARD_CROP_INDEX`: the centre crop is centred on the image,
    the zoom anchor on the middle tile of a 3×3 grid (they differ when a side is not a multiple
    of 3 plus the right remainder).
    """
    import torch
    from PIL import Image

    rgb = to_rgb(image)
    size = resized_size(rgb.width, rgb.height, 256)
    resized = rgb if size == rgb.size else rgb.resize(size, Image.BICUBIC)
    w, h = resized.size
    # torchvision's CenterCrop arithmetic.
    top, left = int(round((h - CROP) / 2.0)), int(round((w - CROP) / 2.0))
    arr = np.asarray(resized.crop((left, top, left + CROP, top + CROP)))
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def standard_crop_torch(image: torch.Tensor) -> torch.Tensor:
    """:func:`standard_crop` of a uint8 (3, H, W) tensor, resized on its device as
    :func:`zoom_crops_torch` resizes (within its 2 grey levels of PIL): uint8 (3, 224, 224).
    For images decoded on the device, which have no PIL twin at hand."""
    h, w = image.shape[-2:]
    nw, nh = resized_size(w, h, 256)
    resized = _resize_torch(image[None].float(), 256)[0]
    top, left = int(round((nh - CROP) / 2.0)), int(round((nw - CROP) / 2.0))
    return resized[:, top:top + CROP, left:left + CROP].contiguous()


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as the uint8 (3, H, W) RGB tensor :func:`zoom_crops_torch` takes."""
    import torch

    arr = np.asarray(to_rgb(image))
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def zoom_crops_torch(images, device=None, indices: Sequence[int] | None = None) -> torch.Tensor:
    """Zoom crops of a batch, resized on ``device``: uint8 (B, K, 3, 224, 224) on that device.

    ``images`` is a list of uint8 (3, H, W) tensors (sizes may differ) or one (B, 3, H, W) tensor.
    Images of one size are resized together (one bicubic antialiased resize per size group and
    scale) and the crops of a scale are cut with one gather. Within 2 grey levels of
    :func:`zoom_crops` (see the module docstring), not identical.
    """
    import torch

    wanted = _check_indices(indices)
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise InvalidValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(images.shape)}")
        images = list(images.unbind(0))
    for b, img in enumerate(images):
        if img.dtype != torch.uint8 or img.dim() != 3 or img.shape[0] != 3:
            raise InvalidValueError(f"image {b}: expected uint8 (3, H, W), got {img.dtype} "
                                    f"{tuple(img.shape)}")
    device = torch.device(device) if device is not None else images[0].device
    out = torch.zeros((len(images), len(wanted), 3, CROP, CROP), dtype=torch.uint8, device=device)
    groups: dict[tuple[int, int], list[int]] = {}
    for b, img in enumerate(images):
        groups.setdefault(tuple(img.shape[-2:]), []).append(b)
    plan = _by_scale(wanted)
    for (h, w), members in groups.items():
        # Every index this size group needs, built on the host and moved in one copy: a
        # torch.tensor(list, device=cuda) per scale would be a host-device sync each.
        table, spans = _crop_table(w, h, plan, members)
        table = table.to(device, non_blocking=True)
        rows = table[spans[-1][0]:spans[-1][1], 2]
        x = torch.stack([images[b] for b in members]).to(device, non_blocking=True).float()
        for (s, _jobs), (a, b) in zip(plan.items(), spans, strict=False):
            _cut_torch(_resize_torch(x, SCALES[s]), table[a:b], out, rows)
    return out


def _crop_table(w: int, h: int, plan: dict[int, list[tuple[int, int]]], members: list[int]):
    """One host int64 tensor of (padded top, padded left, output position) rows, a scale's jobs
    after another, then the batch rows ``members`` (in column 2); and each block's (start, end)."""
    import torch

    pad = CROP // 2
    blocks, spans, start = [], [], 0
    for s, jobs in plan.items():
        boxes = anchor_boxes(*resized_size(w, h, SCALES[s]))
        blocks.append([(boxes[a][0] + pad, boxes[a][1] + pad, p) for p, a in jobs])
        spans.append((start, start + len(jobs)))
        start += len(jobs)
    blocks.append([(0, 0, b) for b in members])
    spans.append((start, start + len(members)))
    flat = np.array([r for block in blocks for r in block], dtype=np.int64).reshape(-1, 3)
    return torch.from_numpy(flat), spans


def aa_weights(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) float64 matrix of an antialiased bicubic resize along one axis, as
    ``interpolate(mode="bicubic", antialias=True, align_corners=False)`` computes it (PyTorch's
    ``_compute_indices_weights_aa``, PIL's ``precompute_coeffs``): cubic a = -0.5, support
    2 × the shrink factor, rows normalised to sum to 1."""
    scale = n_in / n_out
    support, inv = (2.0 * scale, 1.0 / scale) if scale >= 1.0 else (2.0, 1.0)
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        t = np.abs((np.arange(lo, hi) - center + 0.5) * inv)
        a = -0.5
        w = np.where(t < 1.0, ((a + 2) * t - (a + 3)) * t * t + 1,
                     np.where(t < 2.0, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))
        total = w.sum()
        weights[i, lo:hi] = w / total if total != 0 else w
    return weights


def _resize_pass(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """One 1-D antialiased bicubic pass of float (B, 3, H, W) to ``size`` (only one side moves)."""
    import torch
    import torch.nn.functional as F

    (h, w), (nh, nw) = x.shape[-2:], size
    if max(h / nh, w / nw) <= MAX_AA_SHRINK:
        return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    # float64 on purpose: exact enough to round like interpolate, and never TF32.
    if nw != w:
        m = torch.from_numpy(aa_weights(w, nw)).to(x.device, non_blocking=True)
        return torch.matmul(x.double(), m.T).float()
    m = torch.from_numpy(aa_weights(h, nh)).to(x.device, non_blocking=True)
    return torch.matmul(m, x.double()).float()


def _resize_torch(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, 3, H, W) float → resized uint8 (B, 3, h, w), shorter side ``scale``.

    Two 1-D passes, horizontal first, each rounded half-up and clamped to 0..255 in between, as
    PIL does: without the intermediate clamp, bicubic overshoot at hard edges (text, black on
    white) would leave differences of up to ~18 grey levels instead of 2.
    """
    import torch

    h, w = x.shape[-2:]
    nw, nh = resized_size(w, h, scale)
    for size in ((h, nw), (nh, nw)):
        if tuple(x.shape[-2:]) != size:
            x = _resize_pass(x, size)
            x = x.add_(0.5).floor_().clamp_(0, 255)
    return x.to(torch.uint8)


def _cut_torch(img: torch.Tensor, table: torch.Tensor, out: torch.Tensor,
               rows_out: torch.Tensor) -> None:
    """Crops of resized (B, 3, h, w) uint8 images into ``out[rows_out]`` (B, K, 3, 224, 224);
    ``table`` (K, 3) on the device holds each crop's padded top, padded left and position."""
    import torch
    import torch.nn.functional as F

    pad = CROP // 2  # anchors lie inside the image, so every box fits in a 112-pixel margin
    padded = F.pad(img, (pad, pad, pad, pad))
    ar = torch.arange(CROP, device=img.device)
    rows = (table[:, 0, None] + ar)[:, :, None]  # (K, 224, 1)
    cols = (table[:, 1, None] + ar)[:, None, :]  # (K, 1, 224)
    crops = padded[:, :, rows, cols]  # (B, 3, K, 224, 224)
    out[rows_out[:, None], table[None, :, 2]] = crops.permute(0, 2, 1, 3, 4)
