"""The greedy minimum set cover of paper section 4.2, over bit-packed masks.

Transforms and images form a bipartite graph (an edge where the transform's crop is classified
correctly). The greedy cover picks, again and again, the transform that solves the most images
not solved yet, until every solvable image is solved. **Ties go to the lowest transform index**
(``9*s + 3*i + j``: smaller scale first, then row, then column), so the cover is a function of
the masks alone; a caller may pass another tie order (learned crop orders break ties by the
heuristic order, which matters when few images leave many transforms tied). Its first 36 transforms give the paper's Table 1b ("maximum possible accuracy
using N = 36 crops"); its size is Table 2.

Each transform's images are one row of bits (64 images per ``uint64`` word); a step ANDs every row
with the still-unsolved images and counts bits (``np.bitwise_count``), skipping words with no
unsolved image left. A 13,000-image run takes well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cover:
    """A greedy cover: ``transforms`` in the order picked, ``gains`` (images each newly solved)
    and ``images`` (all images, solvable or not)."""

    transforms: tuple[int, ...]
    gains: tuple[int, ...]
    images: int

    @property
    def size(self) -> int:
        return len(self.transforms)

    @property
    def solved(self) -> int:
        return int(sum(self.gains))

    def accuracy_at(self, k: int) -> float:
        """Fraction of all images solved by the first ``k`` transforms of the cover."""
        return float(sum(self.gains[:k]) / self.images) if self.images else 0.0

    def curve(self) -> np.ndarray:
        """Accuracy after 1, 2, …, ``size`` transforms."""
        if not self.images:
            return np.zeros(0)
        return np.cumsum(self.gains, dtype=np.int64) / self.images


def pack_transforms(correct: np.ndarray) -> np.ndarray:
    """(N, T) bool → (T, ceil(N / 64)) uint64: one row of image bits per transform."""
    rows = np.packbits(np.ascontiguousarray(correct.T), axis=1, bitorder="little")
    pad = (-rows.shape[1]) % 8
    if pad:
        rows = np.pad(rows, ((0, 0), (0, pad)))
    return np.ascontiguousarray(rows).view(np.uint64)


def greedy_cover(correct: np.ndarray, tie_order=None) -> Cover:
    """The greedy minimum set cover of an (N, T) bool matrix (module docstring for the rules).

    ``tie_order`` (a permutation of the T transforms) decides ties: the transform earliest in it
    wins. Default: the lowest transform index.
    """
    correct = np.asarray(correct, dtype=bool)
    n = correct.shape[0]
    ties = np.arange(correct.shape[1]) if tie_order is None else np.asarray(tie_order)
    if sorted(ties.tolist()) != list(range(correct.shape[1])):
        raise ValueError(f"tie_order must list each of the {correct.shape[1]} transforms once")
    bits = pack_transforms(correct[:, ties])
    unsolved = np.bitwise_or.reduce(bits, axis=0) if n else np.zeros(0, dtype=np.uint64)
    picked: list[int] = []
    gains: list[int] = []
    while True:
        live = np.flatnonzero(unsolved)
        if live.size == 0:
            break
        counts = np.bitwise_count(bits[:, live] & unsolved[live]).sum(axis=1, dtype=np.int64)
        best = int(np.argmax(counts))  # the first maximum: earliest in the tie order
        picked.append(int(ties[best]))
        gains.append(int(counts[best]))
        unsolved &= ~bits[best]
    return Cover(tuple(picked), tuple(gains), n)
