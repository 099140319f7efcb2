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

:class:`CropOrder` is an order as a value. Besides the heuristic, an order can be learned from an
exhaustive run (:func:`learned_order`, ``imhard mine --order-from RUN``): the greedy minimum set
cover of its masks first (the crop that solves most images, then the one that solves most of the
rest, …), then the transforms the cover does not need, in the heuristic order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from ..errors import InvalidValueError

N_CROPS = 324
ROUND_SIZES = (1, 8, 27, 72, 216)
ORDER_VERSION = "centre-near-256-v1"
#: Version of orders learned from an exhaustive run (``imhard mine --order-from RUN``).
LEARNED_VERSION = "greedy-cover-v1"

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
    """All 324 transform indices (``9*s + 3*i + j``) in the heuristic early-exit order; ties by
    index."""
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


@dataclass(frozen=True)
class CropOrder:
    """An evaluation order of the 324 transforms, cut into rounds of :data:`ROUND_SIZES`.

    ``version`` names how it was made; ``origin`` (learned orders) says from which run. What
    ``run.json`` pins is :meth:`describe`: a resumed run refuses any other order.
    """

    indices: tuple[int, ...]
    version: str = ORDER_VERSION
    origin: dict | None = None

    def __post_init__(self):
        if sorted(self.indices) != list(range(N_CROPS)):
            raise InvalidValueError(f"a crop order must list each of the {N_CROPS} transform "
                                    f"indices once, got {len(self.indices)} entries")

    @cached_property
    def rank(self) -> np.ndarray:
        """Position of each transform index in the order (the inverse permutation)."""
        rank = np.empty(N_CROPS, dtype=np.int32)
        rank[list(self.indices)] = np.arange(N_CROPS, dtype=np.int32)
        return rank

    def rounds(self, exhaustive: bool = False) -> tuple[tuple[int, ...], ...]:
        """The crop indices of each round; exhaustive mode is one round of all 324."""
        if exhaustive:
            return (self.indices,)
        ends = np.cumsum(ROUND_SIZES)
        return tuple(self.indices[e - n:e] for n, e in zip(ROUND_SIZES, ends, strict=True))

    def describe(self) -> dict:
        """What ``run.json`` and ``summary.json`` record: a learned order in full, with its origin."""
        out = {"version": self.version, "round_sizes": list(ROUND_SIZES),
               "first_crops": list(self.indices[:9])}
        if self.version != ORDER_VERSION:
            out["indices"] = list(self.indices)
            out["origin"] = dict(self.origin or {})
        return out


@lru_cache(maxsize=1)
def heuristic_order() -> CropOrder:
    """The built-in order (module docstring)."""
    return CropOrder(crop_order())


def learned_order(first: list[int] | tuple[int, ...], origin: dict) -> CropOrder:
    """``first`` (e.g. a greedy cover, best first), then every other transform in the heuristic
    order; ``origin`` names the data it was learned from (run name, its ids' SHA-256, …)."""
    first = [int(i) for i in first]
    if len(set(first)) != len(first):
        raise InvalidValueError("a learned crop order lists a transform twice")
    seen = set(first)
    rest = [i for i in crop_order() if i not in seen]
    return CropOrder(tuple(first + rest), LEARNED_VERSION, dict(origin))


def rounds(exhaustive: bool = False) -> tuple[tuple[int, ...], ...]:
    """The rounds of the heuristic order."""
    return heuristic_order().rounds(exhaustive)


def crop_rank() -> tuple[int, ...]:
    """Position of each transform index in the heuristic order."""
    return tuple(int(r) for r in heuristic_order().rank)


def describe() -> dict:
    """What ``run.json`` records about the heuristic order."""
    return heuristic_order().describe()
