"""Accuracy, its 95% Wilson interval, top-5 and ECE (15 equal-width bins over the top-1
probability, bin b holding (b/15, (b+1)/15]) from per-image predictions. Pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054
ECE_BINS = 15


def correctness(top5: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """``(correct, correct_top5)`` boolean arrays: top-1 / any of top-5 in each label set
    (``labels``: a sequence of label lists, or an Arrow list array, vectorised without a Python
    object per row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    top5 = np.asarray(top5, dtype=np.int64).reshape(-1, 5)
    if isinstance(labels, pa.ChunkedArray):
        labels = labels.combine_chunks()
    if not isinstance(labels, pa.Array):
        labels = pa.array([[int(x) for x in lab] for lab in labels], pa.list_(pa.int64()))
    n = len(labels)
    if top5.shape[0] != n:
        raise ValueError(f"{top5.shape[0]} predictions for {n} label sets")
    flat = pc.list_flatten(labels).to_numpy(zero_copy_only=False).astype(np.int64)
    parent = pc.list_parent_indices(labels).to_numpy(zero_copy_only=False)
    c1 = np.bincount(parent[flat == top5[parent, 0]], minlength=n) > 0
    c5 = np.bincount(parent[(flat[:, None] == top5[parent]).any(axis=1)], minlength=n) > 0
    return c1, c5


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (``(0, 1)`` when n is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The bounds at k = 0 and k = n are exactly 0 and 1; rounding would miss them by an ulp.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """ECE over equal-width bins of the top-1 probability (see the module docstring)."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return 0.0
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            ece += mask.sum() / conf.size * abs(ok[mask].mean() - conf[mask].mean())
    return float(ece)


def summarize(correct: np.ndarray, correct_top5: np.ndarray, confidence: np.ndarray) -> dict:
    """The headline metrics of one set of rows, numbers as numbers (fractions in [0, 1])."""
    n = int(len(correct))
    k = int(np.sum(correct))
    lo, hi = wilson_interval(k, n)
    return {
        "n": n,
        "correct": k,
        "accuracy": k / n if n else 0.0,
        "accuracy_ci95": [lo, hi],
        "top5_accuracy": float(np.mean(correct_top5)) if n else 0.0,
        "ece": expected_calibration_error(confidence, correct),
    }


def per_origin(origins: Sequence[str], correct: np.ndarray, correct_top5: np.ndarray,
               confidence: np.ndarray) -> list[dict]:
    """:func:`summarize` per origin, sorted by origin name."""
    origins = np.asarray(origins, dtype=object)
    table = []
    for origin in sorted(set(origins.tolist())):
        m = origins == origin
        table.append({"origin": origin, **summarize(correct[m], correct_top5[m], confidence[m])})
    return table


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def to_probabilities(out: np.ndarray, classes: Sequence[int] | None = None) -> np.ndarray:
    """Rows that already are probabilities (non-negative, summing to 1 ± 1e-3) are kept;
    every other row is treated as logits and softmaxed.

    With ``classes`` (a protocol's label space, e.g. ImageNet-A's 200) the result covers those
    columns only: logits are softmaxed over them, probabilities renormalised over them (a row
    with no mass there becomes uniform), as an arg-max within the subset assumes.
    """
    out = np.asarray(out, dtype=np.float64)
    is_prob = (out.min(axis=1) >= 0) & (np.abs(out.sum(axis=1) - 1.0) <= 1e-3)
    if classes is None:
        return np.where(is_prob[:, None], out, _softmax(out))
    sub = out[:, np.asarray(classes, dtype=np.int64)]
    mass = sub.sum(axis=1, keepdims=True)
    renorm = np.divide(sub, mass, out=np.full_like(sub, 1.0 / sub.shape[1]), where=mass > 0)
    return np.where(is_prob[:, None], renorm, _softmax(sub))


def top5_of(out: np.ndarray, classes: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-5 classes (ties broken by the lower index) and their probabilities; with ``classes``
    (sorted ImageNet-1k indices), the top-5 among those classes only (see :func:`to_probabilities`)."""
    probs = to_probabilities(out, classes)
    top5 = np.argsort(-probs, axis=1, kind="stable")[:, :5]
    prob5 = np.take_along_axis(probs, top5, axis=1).astype(np.float32)
    if classes is not None:
        top5 = np.asarray(classes, dtype=np.int64)[top5]
    return top5.astype(np.int64), prob5
