"""The order in which early exit evaluates the 324 zoom crops, and the rounds it is cut into.

An image is settled by its first correct crop, so the crops most likely to be correct go first.
The order is a fixed heuristic drawn from the paper's findings, not from any one run:

* the standard view comes first: the centre anchor at S=256 is the crop closest to the usual
  "resize 256, centre crop 224" (identical for square images), and top-1 accuracy with that view is
  what settles most images (75–80% of ImageNet for the judges the paper studies, §4.1);
* the centre anchor beats the other eight at every scale (the centre bias of §4.4, strongest on
  ImageNet-A and ObjectNet), and the four edge anchors beat the corners;
* scales near 256 beat far ones (CLIP's accuracy falls on both sides of 256, §4.5), and zooming
  in helps far more images than zooming out (§4.3), so distance is measured in log-scale with
  zoom-out counted double; S=10 and S=16 crops are nearly all zero padding and go last.

Rounds are 1, 8, 27, 72 and 216 crops: the standard crop alone, then the centre anchor at the eight
nearest scales, and so on. An image leaves the batch after the round in which it was settled, so
it costs 1, 9, 36, 108 or 324 forward passes. Rounds are whole (every crop of a round is
evaluated), which keeps ``n_forward`` and ``first_correct_crop`` independent of batching, ranks and
resumes. A run's crop order is recorded in ``run.json`` under :data:`ORDER_VERSION`.
"""

from __future__ import annotations

import math
from functools import lru_cache

N_CROPS = 324
ROUND_SIZES = (1, 8, 27, 72, 216)
ORDER_VERSION = "centre-near-256-v1"

#: Extra log-scale distance for an off-centre anchor: edge anchors (row or column 1), corners.
_EDGE_COST = 0.5
_CORNER_COST = 0.8
_ZOOM_OUT_WEIGHT = 2.0
STANDARD_SCALE = 256


def _scales() -> tuple[int, ...]:
    from ..zoom import SCALES

    return tuple(SCALES)


def crop_cost(scale: int, row: int, col: int) -> float:
    """Lower is tried earlier: log-distance from S=256 (zoom-out double) plus an anchor cost."""
    d = math.log(scale / STANDARD_SCALE)
    dist = d if d >= 0 else -d * _ZOOM_OUT_WEIGHT
    if row == 1 and col == 1:
        return dist
    return dist + (_EDGE_COST if row == 1 or col == 1 else _CORNER_COST)


@lru_cache(maxsize=1)
def crop_order() -> tuple[int, ...]:
    """All 324 transform indices (``9*s + 3*i + j``) in early-exit order; ties by index."""
    scales = _scales()
    keyed = []
    for s, scale in enumerate(scales):
        for i in range(3):
            for j in range(3):
                keyed.append((crop_cost(scale, i, j), 9 * s + 3 * i + j))
    order = tuple(idx for _, idx in sorted(keyed))
    if sorted(order) != list(range(N_CROPS)):
        raise AssertionError(f"zoom has {len(scales)} scales; the crop order needs 36")
    return order


def rounds(exhaustive: bool = False) -> tuple[tuple[int, ...], ...]:
    """The crop indices of each round; exhaustive mode is one round of all 324."""
    order = crop_order()
    if exhaustive:
        return (order,)
    out, start = [], 0
    for size in ROUND_SIZES:
        out.append(order[start:start + size])
        start += size
    return tuple(out)


@lru_cache(maxsize=1)
def crop_rank() -> tuple[int, ...]:
    """Position of each transform index in :func:`crop_order` (the inverse permutation)."""
    rank = [0] * N_CROPS
    for pos, idx in enumerate(crop_order()):
        rank[idx] = pos
    return tuple(rank)


def describe() -> dict:
    """What ``run.json`` and ``summary.json`` record about the order."""
    return {"version": ORDER_VERSION, "round_sizes": list(ROUND_SIZES),
            "first_crops": list(crop_order()[:9])}
