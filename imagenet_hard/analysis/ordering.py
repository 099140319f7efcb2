"""Crop orders learned from an exhaustive run, and what an order costs early-exit mining.

:func:`order_from_masks` turns a run's greedy cover into a
:class:`~imagenet_hard.mining.order.CropOrder` (cover first, best first; then the transforms the
cover does not need, in the heuristic order). Here the cover breaks ties by the heuristic order,
not by transform index (:func:`learning_cover`): with few images many transforms tie, and the
lowest index would put tiny zoom-outs first. Its origin — run name, its ids' SHA-256, the cover
size — goes into the new run's ``run.json``.

:func:`forward_passes` replays early exit on masks: an image whose first correct crop sits at
position p of the order costs every crop up to the end of the round holding p (324 when none is
correct). That is exactly the engine's ``n_forward`` (rounds are whole), so orders can be compared
on held-out images without running a judge again (:func:`held_out_forward_passes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..mining.order import ROUND_SIZES, CropOrder, crop_order, heuristic_order, learned_order
from .cover import greedy_cover
from .masks import RunMasks, load_run


def learning_cover(correct: np.ndarray):
    """The greedy cover a learned order starts with: ties go to the crop the heuristic order
    tries first, so transforms the data cannot tell apart keep the heuristic's order."""
    return greedy_cover(correct, tie_order=crop_order())


def cover_with_origin(masks: RunMasks) -> tuple[tuple[int, ...], dict]:
    """The learning cover of ``masks`` and where it comes from (run, ids SHA-256, sizes)."""
    cover = learning_cover(masks.correct)
    return cover.transforms, {"run": masks.run, "judge": masks.record.get("judge"),
                              "ids_sha256": masks.ids_sha256(), "images": len(masks),
                              "cover_size": cover.size}


def order_from_masks(masks: RunMasks) -> CropOrder:
    """The crop order learned from ``masks`` (module docstring)."""
    return learned_order(*cover_with_origin(masks))


def order_from_run(run: str, home=None) -> CropOrder:
    """``imhard mine --order-from RUN``: the order learned from exhaustive run ``run``."""
    return order_from_masks(load_run(run, home))


def cover_of_run(run: str, home=None) -> tuple[tuple[int, ...], dict]:
    """``imhard score --tta-from RUN``: the greedy cover of exhaustive run ``run``, with origin."""
    return cover_with_origin(load_run(run, home))


def forward_passes(correct: np.ndarray, order: CropOrder) -> np.ndarray:
    """Per image, the forward passes early exit spends with crop order ``order`` (int (N,))."""
    ranked = np.asarray(correct, dtype=bool)[:, list(order.indices)]
    solved = ranked.any(axis=1)
    first = np.where(solved, ranked.argmax(axis=1), len(order.indices))
    ends = np.cumsum(ROUND_SIZES)
    cost = ends[np.minimum(np.searchsorted(ends, first, side="right"), len(ends) - 1)]
    return np.where(solved, cost, ends[-1]).astype(np.int64)


@dataclass(frozen=True)
class OrderComparison:
    """Mean forward passes per held-out image with the learned and the heuristic order, over all
    held-out images and over those some crop solves (candidates cost 324 either way)."""

    splits: int
    images: int
    learned: float
    heuristic: float
    learned_solved: float
    heuristic_solved: float
    learned_train: float
    heuristic_train: float

    def summary(self) -> str:
        return (f"held-out forward passes per image over {self.splits} half splits of "
                f"{self.images} images: learned {self.learned:.2f}, heuristic "
                f"{self.heuristic:.2f} (solved images only: {self.learned_solved:.2f} vs "
                f"{self.heuristic_solved:.2f}); on the learning half: {self.learned_train:.2f} vs "
                f"{self.heuristic_train:.2f}")


def held_out_forward_passes(masks: RunMasks, splits: int = 10, seed: int = 0,
                            groups=None) -> OrderComparison:
    """Learn an order on a random half of the images, replay both orders on the other half; each
    split is used both ways round. Means over every (split, direction). With ``groups`` (one
    label per image, e.g. the photo a variant was made from) whole groups go to one half, so no
    image is tested against an order learned from its own siblings."""
    rng = np.random.default_rng(seed)
    correct = masks.correct
    n = len(masks)
    labels = np.arange(n) if groups is None else np.unique(np.asarray(groups),
                                                           return_inverse=True)[1]
    heuristic = forward_passes(correct, heuristic_order())
    solved = correct.any(axis=1)
    sums = np.zeros(6)
    counts = np.zeros(3)
    for _ in range(splits):
        perm = rng.permutation(labels.max() + 1 if n else 0)
        first = np.isin(labels, perm[: len(perm) // 2])
        halves = (np.flatnonzero(first), np.flatnonzero(~first))
        for learn, test in (halves, halves[::-1]):
            order = learned_order(learning_cover(correct[learn]).transforms, {})
            learned = forward_passes(correct, order)
            t_solved = test[solved[test]]
            sums += (learned[test].sum(), heuristic[test].sum(), learned[t_solved].sum(),
                     heuristic[t_solved].sum(), learned[learn].sum(), heuristic[learn].sum())
            counts += (len(test), len(t_solved), len(learn))
    m = sums / np.repeat(np.maximum(counts, 1), 2)
    return OrderComparison(splits, n, *(float(x) for x in m))
