"""Recomputing a result's numbers from its predictions table (``score`` computes them this way)
and listing every claim its predictions or the set's labels do not support.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .metrics import correctness, per_origin, summarize

#: Floating-point slack when comparing a claimed fraction with the recomputed one.
TOLERANCE = 1e-9


def recompute(table: pa.Table) -> tuple[dict, list[dict]]:
    """Headline metrics and the per-origin table from a predictions table."""
    # Arrow to numpy without Python objects: a board rebuild recomputes every entry (7x faster
    # than to_pylist on 10,980 rows, the same numbers).
    c1 = np.asarray(table.column("correct").to_numpy(zero_copy_only=False), dtype=bool)
    c5 = np.asarray(table.column("correct_top5").to_numpy(zero_copy_only=False), dtype=bool)
    conf = pc.list_element(table.column("top5_prob"), 0).to_numpy(
        zero_copy_only=False).astype(np.float64)
    enc = table.column("origin").combine_chunks().dictionary_encode()
    origins = np.asarray(enc.dictionary.to_pylist(), dtype=object)[enc.indices.to_numpy()]
    return summarize(c1, c5, conf), per_origin(origins, c1, c5, conf)


#: Every number a result claims per set of rows (all of them, and each origin).
CLAIMS = ("n", "correct", "accuracy", "accuracy_ci95", "top5_accuracy", "ece")


def agrees(claimed, actual) -> bool:
    """A claimed number (or list or object of them) is the recomputed one within TOLERANCE."""
    if isinstance(actual, dict):
        return (isinstance(claimed, dict) and claimed.keys() == actual.keys()
                and all(agrees(claimed[k], actual[k]) for k in actual))
    if isinstance(actual, list):
        return (isinstance(claimed, list) and len(claimed) == len(actual)
                and all(agrees(c, a) for c, a in zip(claimed, actual, strict=True)))
    if claimed is None or actual is None:
        return claimed is actual
    return (isinstance(claimed, (int, float)) and not isinstance(claimed, bool)
            and abs(float(claimed) - float(actual)) <= TOLERANCE)


def _compare(prefix: str, claimed: dict, actual: dict, problems: list[str]) -> None:
    for key in CLAIMS:
        a, b = claimed.get(key), actual[key]
        if not agrees(a, b):
            problems.append(f"{prefix}{key}: claimed {a}, the predictions give {b}")


def consistency_problems(result, table: pa.Table, sds=None, recomputed=None) -> list[str]:
    """Every way the result's numbers disagree with its predictions (and with the dataset's labels
    when ``sds``, a set's :class:`~imagenet_hard.score.sets.Rows`, is given).
    ``recomputed``: :func:`recompute` of ``table`` when the caller has it already."""
    metrics, origins = recomputed if recomputed is not None else recompute(table)
    problems = claim_problems(result, metrics, origins, table.num_rows)
    if sds is not None:
        if result.dataset["rows"] != len(sds):
            problems.append(f"dataset.rows: claimed {result.dataset['rows']}, the dataset has "
                            f"{len(sds)}")
        problems += _label_problems(table, sds)
    return problems


def claim_problems(result, metrics: dict, origins: list[dict], rows: int) -> list[str]:
    """Every way the result's claims disagree with the numbers :func:`recompute` gave for its
    ``rows`` prediction rows."""
    problems: list[str] = []
    _compare("metrics.", result.metrics, metrics, problems)
    claimed = {row["origin"]: row for row in result.per_origin}
    if set(claimed) != {row["origin"] for row in origins}:
        problems.append(f"per-origin table lists {sorted(claimed)}, the predictions hold "
                        f"{sorted(row['origin'] for row in origins)}")
    for row in origins:
        if row["origin"] in claimed:
            _compare(f"per_origin[{row['origin']}].", claimed[row["origin"]], row, problems)
    if rows != result.dataset["scored"]:
        problems.append(f"{rows} prediction rows, the result says "
                        f"{result.dataset['scored']} rows were scored")
    return problems


def _label_problems(table: pa.Table, sds) -> list[str]:
    ids = table.column("id")
    pos = pc.index_in(ids, value_set=sds.ids)
    unknown = pc.filter(ids, pc.is_null(pos))
    if len(unknown):
        return [f"{len(unknown)} prediction ids are not in the dataset (first: "
                f"{unknown[0].as_py()!r})"]
    top5 = pc.list_flatten(table.column("top5")).to_numpy().reshape(len(ids), 5)
    c1, c5 = correctness(top5, sds.labels.take(pos))
    bad1 = int(np.sum(c1 != table.column("correct").to_numpy(zero_copy_only=False)))
    bad5 = int(np.sum(c5 != table.column("correct_top5").to_numpy(zero_copy_only=False)))
    out = []
    if bad1 or bad5:
        out.append(f"the dataset's labels disagree with the predictions' correct flags on "
                   f"{bad1} rows (top-1) and {bad5} rows (top-5)")
    bad_origin = pc.sum(pc.not_equal(table.column("origin"), sds.origins.take(pos))).as_py() or 0
    if bad_origin:
        out.append(f"{bad_origin} rows name another origin than the dataset does")
    return out
