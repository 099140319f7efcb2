"""Label-error candidates (confident learning's per-class thresholds over several models) on a
synthetic predictions table with planted errors; precision and recall are printed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from imagenet_hard.analysis.label_errors import (
    PREDICTIONS_TABLE_SCHEMA,
    find_label_errors,
    read_predictions_table,
)
from imagenet_hard.errors import InvalidValueError, MissingFileError

N_IMAGES, N_CLASSES, N_PLANTED = 400, 40, 16
MODELS = ("strong-a", "strong-b", "strong-c", "strong-d", "weak")


def synthetic(seed: int = 0):
    """(predictions table, labels, planted ids). Each image has a true class; its label is the
    true class, plus a second acceptable class for 1 in 10 (a label set). Planted errors carry a
    wrong label; the strong models see the true class (p 0.55-0.97), like any image, and make
    their own confident mistakes on 4% of images (p up to 0.95, each alone); the weak model
    guesses a random class confidently on 30%."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, N_CLASSES, N_IMAGES)
    ids = [f"img/{k:04d}" for k in range(N_IMAGES)]
    planted = set(rng.choice(N_IMAGES, N_PLANTED, replace=False).tolist())
    labels = {}
    for k in range(N_IMAGES):
        given = int((true[k] + rng.integers(1, N_CLASSES)) % N_CLASSES) if k in planted else int(true[k])
        extra = [int((given + 1) % N_CLASSES)] if rng.random() < 0.1 and k not in planted else []
        labels[ids[k]] = [given, *extra]
    rows = {"id": [], "model": [], "top_k": [], "top_k_prob": []}
    for m in MODELS:
        for k in range(N_IMAGES):
            top = int(true[k])
            p1 = rng.uniform(0.55, 0.97)
            if m == "weak" and rng.random() < 0.3 or m != "weak" and rng.random() < 0.04:
                top = int(rng.integers(0, N_CLASSES))
                p1 = rng.uniform(0.5, 0.95)
            rest = [c for c in rng.permutation(N_CLASSES).tolist() if c != top][:4]
            probs = [p1, *sorted(rng.dirichlet(np.ones(4)) * (1 - p1), reverse=True)]
            rows["id"].append(ids[k])
            rows["model"].append(m)
            rows["top_k"].append([top, *rest])
            rows["top_k_prob"].append([float(p) for p in probs])
    return pa.table(rows, schema=PREDICTIONS_TABLE_SCHEMA), labels, {ids[k] for k in planted}


def precision_recall(found: set[str], planted: set[str]) -> tuple[float, float]:
    hit = len(found & planted)
    return hit / max(len(found), 1), hit / len(planted)


def test_planted_errors_are_found():
    table, labels, planted = synthetic()
    res = find_label_errors(table, labels, min_models=2)
    found = {c.id for c in res.candidates}
    precision, recall = precision_recall(found, planted)
    print(f"\nplanted {len(planted)}, found {len(found)}: precision {precision:.2f}, "
          f"recall {recall:.2f}")
    assert planted <= found
    assert precision >= 0.9
    c = next(c for c in res.candidates if c.id in planted)
    assert c.suggested not in c.label and len(c.models) >= 2
    assert all(p >= max(t, 0.5) for p, t in zip(c.confidences, c.thresholds, strict=True))
    assert c.models_total == len(MODELS)


def test_one_confident_model_is_not_enough_and_weak_models_can_be_dropped():
    table, labels, planted = synthetic(seed=1)
    loose = find_label_errors(table, labels, min_models=1)
    strict = find_label_errors(table, labels, min_models=4)
    p1, r1 = precision_recall({c.id for c in loose.candidates}, planted)
    p4, r4 = precision_recall({c.id for c in strict.candidates}, planted)
    print(f"\nmin_models 1: precision {p1:.2f} recall {r1:.2f}; min_models 4: precision "
          f"{p4:.2f} recall {r4:.2f}")
    assert p1 < 0.5 <= p4 and r4 > 0
    strong = find_label_errors(table, labels, min_accuracy=0.8)
    assert strong.dropped_models == ("weak",) and "weak" not in strong.models
    assert strong.accuracy["weak"] < 0.8 <= strong.accuracy["strong-a"]


def test_a_class_in_the_label_set_is_no_error():
    """Two models agree confidently on the image's second label: that is a right answer."""
    table = pa.table({"id": ["a", "a"], "model": ["x", "y"], "top_k": [[7, 1], [7, 1]],
                      "top_k_prob": [[0.9, 0.1], [0.9, 0.1]]}, schema=PREDICTIONS_TABLE_SCHEMA)
    assert find_label_errors(table, {"a": [1, 7]}).candidates == ()
    (c,) = find_label_errors(table, {"a": [1]}).candidates
    assert (c.suggested, c.models, c.confidences) == (7, ("x", "y"), (0.9, 0.9))


def test_hostile_tables_are_refused(tmp_path):
    bad = pa.table({"id": ["a"], "model": ["x"], "top_k": [[1000]], "top_k_prob": [[0.9]]},
                   schema=PREDICTIONS_TABLE_SCHEMA)
    with pytest.raises(InvalidValueError, match="outside 0..999"):
        find_label_errors(bad, {"a": [1]})
    bad = pa.table({"id": ["a"], "model": ["x"], "top_k": [[1]], "top_k_prob": [[7.0]]},
                   schema=PREDICTIONS_TABLE_SCHEMA)
    with pytest.raises(InvalidValueError, match="outside \\[0, 1\\]"):
        find_label_errors(bad, {"a": [1]})
    with pytest.raises(InvalidValueError, match="lacks column"):
        find_label_errors(pa.table({"id": ["a"]}), {"a": [1]})
    real = tmp_path / "p.parquet"
    import pyarrow.parquet as pq

    pq.write_table(synthetic()[0], real)
    (tmp_path / "link.parquet").symlink_to(real)
    with pytest.raises(MissingFileError, match="not a regular file"):
        read_predictions_table(tmp_path / "link.parquet")
    assert read_predictions_table(real).num_rows == N_IMAGES * len(MODELS)
