"""Paired significance: whether two entries' accuracies differ on the same images by more than
chance, from their per-image predictions.

Two classifiers scored on the same images disagree on some of them: ``a_only`` images the first
gets right and the second wrong, ``b_only`` the reverse. Under the null hypothesis (equal
accuracy) each discordant image is a fair coin, so McNemar's exact test is the two-sided binomial
test of ``a_only`` successes in ``a_only + b_only`` trials at p = 1/2 (the tails of
``scipy.stats.binom``, the float ``scipy.stats.binomtest`` gives; the images both get right or
both get wrong carry no information about the difference). A board
marks a neighbouring pair in its ranking *significant* when p < :data:`ALPHA`, a test per pair,
uncorrected: it answers "is this step of the ranking real?", not a family-wide question.

Only verified single results have per-image predictions (``results/*.json`` with their
``.predictions.parquet``); reported rows have none, and suite results are ranked in their own view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ALPHA = 0.05
#: Image ids a comparison page lists for each side.
EXAMPLES = 20


@dataclass(frozen=True)
class Paired:
    n: int              # images both were scored on
    both: int
    a_only: int
    b_only: int
    neither: int
    p_value: float
    a_examples: tuple[str, ...] = ()
    b_examples: tuple[str, ...] = ()

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    At p = 1/2 the binomial is symmetric, so the two-sided tail ``binomtest`` finds by searching
    for the mirror of ``k`` is P(X ≤ m) + P(X ≥ n − m), m the smaller count; summed here from
    ``scipy.stats.binom`` in the very terms ``binomtest`` sums (the same float, tested), without
    its search, which took most of a 1,000-entry board's rebuild."""
    from scipy.stats import binom

    n = a_only + b_only
    if n == 0 or a_only == b_only:
        return 1.0
    m = min(a_only, b_only)
    return min(1.0, float(binom.cdf(m, n, 0.5) + binom.sf(n - m - 1, n, 0.5)))


def compare(ids_a, correct_a, ids_b, correct_b) -> Paired:
    """Entries a and b on the images both were scored on (matched by id). Ids may be lists or
    Arrow arrays; two tables in the same order (every board entry on one release) are paired
    without leaving Arrow."""
    import pyarrow as pa

    ids_a, ids_b = _strings(ids_a), _strings(ids_b)
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if ids_a.equals(ids_b):
        ids = ids_a
    else:
        common, ia, ib = np.intersect1d(np.asarray(ids_a.to_pylist(), dtype=str),
                                        np.asarray(ids_b.to_pylist(), dtype=str),
                                        return_indices=True)
        ids, a, b = pa.array(common.tolist(), pa.string()), a[ia], b[ib]
    a_only, b_only = a & ~b, ~a & b
    n_a, n_b = int(a_only.sum()), int(b_only.sum())

    def examples(mask):
        return tuple(ids.filter(pa.array(mask)).slice(0, EXAMPLES).to_pylist())

    return Paired(n=len(ids), both=int((a & b).sum()), a_only=n_a, b_only=n_b,
                  neither=int((~a & ~b).sum()), p_value=mcnemar_exact(n_a, n_b),
                  a_examples=examples(a_only), b_examples=examples(b_only))


def _strings(ids):
    import pyarrow as pa

    if isinstance(ids, pa.Array):
        return ids.cast(pa.string())
    return pa.array([str(i) for i in ids], pa.string())


@dataclass(frozen=True)
class Ranked:
    """A verified single result with its per-image correctness."""

    key: str                 # the result file's stem (a request id on a hosted board)
    name: str
    accuracy: float
    section: str             # dataset fingerprint
    label: str               # the dataset as the board names it
    ids: object              # pyarrow string array
    correct: np.ndarray


def load_ranked(results: Path, checked: dict | None = None) -> list[Ranked]:
    """Every verified single result in ``results`` whose predictions pass the board's checks,
    read once (id and correct columns only). ``checked``: the columns the board's build just
    verified, by file name (:attr:`imagenet_hard.leaderboard.BoardBuild.checked`), so an
    unchanged parquet is not read again."""
    import pyarrow.parquet as pq

    from ..errors import ImHardError
    from ..leaderboard.entries import dataset_label
    from ..score.result import load_result, predictions_path

    out = []
    for path in sorted(Path(results).glob("*.json")) if Path(results).is_dir() else ():
        if path.name.endswith(".suite.json"):
            continue
        try:
            r = load_result(path)
            pred = predictions_path(path)
            if pred.name != r.predictions["file"] or not pred.is_file():
                continue
            if checked is not None and path.name in checked:
                ids, correct = checked[path.name].ids, checked[path.name].correct
            else:
                table = pq.read_table(pred, columns=["id", "correct"])
                ids = table.column("id").combine_chunks()
                correct = table.column("correct").to_numpy(zero_copy_only=False).astype(bool)
        except (ImHardError, OSError, ValueError):
            continue        # the board itself says why a result is refused
        out.append(Ranked(path.name.removesuffix(".json"), r.name, float(correct.mean())
                          if len(correct) else 0.0, r.dataset["fingerprint"],
                          dataset_label(r.dataset), ids, correct))
    return out


def rankings(ranked: list[Ranked]) -> dict[str, list[Ranked]]:
    """Per dataset fingerprint, best first (ties by name), as the board ranks them."""
    out: dict[str, list[Ranked]] = {}
    for r in ranked:
        out.setdefault(r.section, []).append(r)
    for rows in out.values():
        rows.sort(key=lambda r: (-r.accuracy, r.name))
    return out


def neighbours(rows: list[Ranked]) -> list[Paired]:
    """Each entry against the next one down the ranking."""
    return [compare(a.ids, a.correct, b.ids, b.correct) for a, b in zip(rows, rows[1:], strict=False)]
