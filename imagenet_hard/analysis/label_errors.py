"""Label-error candidates: images where several strong models agree, confidently, on a class
outside the label set (confident learning, Northcutt et al. 2021, adapted to label sets).

Input: a *predictions table*, one row per (image, model): ``id``, ``model``, ``top_k`` (class
indices, best first) and ``top_k_prob`` (their probabilities). :func:`board_predictions` builds
it from the verified results of a board scored on one dataset version (each keeps its per-image
top-5 in ``NAME.predictions.parquet``); :func:`read_predictions_table` reads one from parquet.

The rule is confident learning's per-class threshold, applied per model: the threshold of class
``j`` for model ``m`` is m's mean probability of ``j`` over the images whose label set holds
``j`` (a class absent from the top-k counts as 0, so thresholds are lower bounds), or m's mean
self-confidence over all images when no image is labelled ``j``. Model m *confidently* says
image i is class j when ``p(j) ≥ max(threshold, min_confidence)``; of several such classes the
most probable. An image is a candidate when at least ``min_models`` models confidently say the
same class and it is not in the label set. ``min_accuracy`` keeps only strong models (top-1
accuracy on the table's images against their label sets).

Why not ``cleanlab`` (2.9, Apache-2.0, installable here): its ``multi_label=True`` mode reads a
row's labels as classes *present* and wants independent per-class (one-vs-rest) probabilities,
whereas a label set here lists alternative right answers to one single-label question and the
probabilities are softmax outputs; its multi-class mode wants one integer label per row. It also
wants one full ``(N, 1000)`` matrix from one model, and board entries keep each model's top-5:
averaging models into one matrix would drop the evidence asked for (which models agree, at what
confidence). And it would bring scikit-learn and pandas for a rule of a few lines.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import InvalidValueError, MissingFileError
from ..labels import NUM_CLASSES

PREDICTIONS_COLUMNS = ("id", "model", "top_k", "top_k_prob")
PREDICTIONS_TABLE_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("model", pa.string()),
    ("top_k", pa.list_(pa.int64())),
    ("top_k_prob", pa.list_(pa.float32())),
])
DEFAULT_MIN_MODELS = 2
DEFAULT_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class LabelErrorCandidate:
    """An image the models say is ``suggested`` (outside ``label``), with the evidence."""

    id: str
    label: tuple[int, ...]
    suggested: int
    models: tuple[str, ...]
    confidences: tuple[float, ...]   # each model's probability of ``suggested``
    thresholds: tuple[float, ...]    # each model's per-class threshold for it
    models_total: int                # models that scored the image

    @property
    def score(self) -> float:
        """Mean confidence of the agreeing models (the queue's order)."""
        return float(np.mean(self.confidences))


@dataclass(frozen=True)
class LabelErrorSearch:
    candidates: tuple[LabelErrorCandidate, ...]
    models: tuple[str, ...]          # models used (strong enough)
    dropped_models: tuple[str, ...]  # below min_accuracy
    images: int
    accuracy: dict                   # model -> top-1 accuracy on the table's images


def _check_table(table: pa.Table, what: str) -> pa.Table:
    missing = [c for c in PREDICTIONS_COLUMNS if c not in table.column_names]
    if missing:
        raise InvalidValueError(f"{what} lacks column(s) {', '.join(missing)}; a predictions "
                                f"table has {', '.join(PREDICTIONS_COLUMNS)}")
    return table.select(list(PREDICTIONS_COLUMNS))


def read_predictions_table(path) -> pa.Table:
    """A predictions table from parquet (a regular file: links are not followed)."""
    import pyarrow.parquet as pq

    p = Path(path)
    if p.is_symlink() or not p.is_file():
        raise MissingFileError(f"predictions table {p} is not a regular file; pass the parquet "
                               f"file with columns {', '.join(PREDICTIONS_COLUMNS)}")
    try:
        table = pq.read_table(p, columns=list(PREDICTIONS_COLUMNS))
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        raise InvalidValueError(f"predictions table {p} is not parquet with columns "
                                f"{', '.join(PREDICTIONS_COLUMNS)} ({exc})") from None
    return _check_table(table, str(p))


def board_predictions(board_dir, version: str) -> pa.Table:
    """The per-image top-5 of every complete verified single result in ``board_dir/results``
    scored on dataset version ``version``, as a predictions table (model = the entry's name)."""
    from ..score.result import load_result, read_predictions

    results = Path(board_dir) / "results"
    if not results.is_dir():
        raise MissingFileError(f"no board results folder {results}; pass --board DIR")
    version = str(version).removeprefix("v")
    parts, seen = [], set()
    for path in sorted(results.glob("*.json")):
        if path.is_symlink() or "sets" in json.loads(path.read_text(encoding="utf-8")):
            continue  # suite results score other tables; links are not followed
        result = load_result(path)
        if str(result.dataset.get("version") or "") != version or not result.complete:
            continue
        if result.name in seen:
            raise InvalidValueError(f"two results named {result.name!r} on version {version} in "
                                    f"{results}; rename one")
        seen.add(result.name)
        t = read_predictions(path, result)
        parts.append(pa.table({
            "id": t.column("id"),
            "model": pa.array([result.name] * t.num_rows, pa.string()),
            "top_k": t.column("top5").cast(pa.list_(pa.int64())),
            "top_k_prob": t.column("top5_prob").cast(pa.list_(pa.float32())),
        }))
    if not parts:
        raise MissingFileError(f"no complete verified result in {results} was scored on version "
                               f"{version}; score one (`imhard score`) or pick another --version")
    return pa.concat_tables(parts)


@dataclass(frozen=True)
class ModelRows:
    """One model's predictions, flattened: image index, class and probability per top-k entry,
    and whether the class is in that image's label set."""

    row: np.ndarray
    cls: np.ndarray
    prob: np.ndarray
    in_label: np.ndarray


def _model_rows(d: dict, picks: np.ndarray, index: dict[str, int],
                label_codes: np.ndarray) -> ModelRows:
    rows, classes, probs = [], [], []
    for k in picks:
        i, m, cls, p = d["id"][k], d["model"][k], d["top_k"][k], d["top_k_prob"][k]
        if len(cls) != len(p) or not cls:
            raise InvalidValueError(f"predictions of {m!r} for {i!r}: top_k and top_k_prob must "
                                    "be non-empty lists of the same length")
        rows += [index[i]] * len(cls)
        classes += cls
        probs += p
    row = np.asarray(rows, dtype=np.int64)
    cls = np.asarray(classes, dtype=np.int64)
    prob = np.asarray(probs, dtype=np.float64)
    if cls.size and (cls.min() < 0 or cls.max() >= NUM_CLASSES):
        raise InvalidValueError(f"predictions of {d['model'][picks[0]]!r} name a class outside "
                                f"0..{NUM_CLASSES - 1}")
    if prob.size and (not np.isfinite(prob).all() or prob.min() < 0 or prob.max() > 1):
        raise InvalidValueError(f"predictions of {d['model'][picks[0]]!r} hold a probability "
                                "outside [0, 1]")
    return ModelRows(row, cls, prob, np.isin(row * NUM_CLASSES + cls, label_codes))


def thresholds(m: ModelRows, label_count: np.ndarray, n_images: int) -> np.ndarray:
    """Per class: the model's mean probability of the class over the images labelled with it (a
    class outside its top-k counts 0), or its mean self-confidence when no image is (t_j)."""
    sums = np.bincount(m.cls[m.in_label], weights=m.prob[m.in_label], minlength=NUM_CLASSES)
    best = np.zeros(n_images)
    np.maximum.at(best, m.row[m.in_label], m.prob[m.in_label])
    self_conf = float(best.mean()) if n_images else 0.0
    return np.where(label_count > 0, sums / np.maximum(label_count, 1), self_conf)


def _first_per_row(row: np.ndarray, prob: np.ndarray, keep: np.ndarray) -> dict[int, int]:
    """For each image, the index of its most probable kept entry."""
    idx = np.flatnonzero(keep)
    order = idx[np.lexsort((-prob[idx], row[idx]))]
    out = {}
    for k in order:
        out.setdefault(int(row[k]), int(k))
    return out


def find_label_errors(table: pa.Table, labels: dict[str, list[int]],
                      min_models: int = DEFAULT_MIN_MODELS,
                      min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                      min_accuracy: float = 0.0) -> LabelErrorSearch:
    """Label-error candidates of the images in ``labels`` (id → label set) from ``table``."""
    import pyarrow.compute as pc

    table = _check_table(table, "predictions table")
    if int(min_models) < 1:
        raise InvalidValueError(f"min_models must be at least 1, got {min_models}")
    if not 0 <= min_confidence <= 1 or not 0 <= min_accuracy <= 1:
        raise InvalidValueError("min_confidence and min_accuracy must be in [0, 1]")
    ids = sorted(set(table.column("id").to_pylist()) & set(labels))
    if not ids:
        raise InvalidValueError("no image of the predictions table has a label here; import the "
                                "run whose images were scored (`imhard review import --run RUN`)")
    index = {i: k for k, i in enumerate(ids)}
    table = table.filter(pc.is_in(table.column("id"), pa.array(ids)))
    codes = np.asarray(sorted(index[i] * NUM_CLASSES + int(j) for i in ids for j in set(labels[i])),
                       dtype=np.int64)
    label_count = np.bincount(codes % NUM_CLASSES, minlength=NUM_CLASSES)
    d = table.to_pydict()
    model_col = np.asarray(d["model"], dtype=object)
    models = sorted(set(d["model"]))
    rows = {m: _model_rows(d, np.flatnonzero(model_col == m), index, codes) for m in models}
    acc = {}
    for m, r in rows.items():
        top = _first_per_row(r.row, r.prob, np.ones(r.row.size, dtype=bool))
        acc[m] = float(np.mean([r.in_label[k] for k in top.values()])) if top else 0.0
    used = tuple(m for m in models if acc[m] >= min_accuracy)
    dropped = tuple(m for m in models if acc[m] < min_accuracy)
    votes: dict[tuple[int, int], list[tuple[str, float, float]]] = defaultdict(list)
    seen = np.zeros(len(ids), dtype=np.int64)
    for m in used:
        r = rows[m]
        seen[np.unique(r.row)] += 1
        t = thresholds(r, label_count, len(ids))
        confident = r.prob >= np.maximum(t[r.cls], min_confidence)
        for img, k in _first_per_row(r.row, r.prob, confident).items():
            if not r.in_label[k]:
                votes[(img, int(r.cls[k]))].append((m, float(r.prob[k]), float(t[r.cls[k]])))
    best: dict[int, tuple[int, list]] = {}
    for (img, j), vs in votes.items():
        key = (len(vs), sum(v[1] for v in vs))
        if img not in best or key > (len(best[img][1]), sum(v[1] for v in best[img][1])):
            best[img] = (j, vs)
    found = [LabelErrorCandidate(
        id=ids[img], label=tuple(sorted(int(x) for x in set(labels[ids[img]]))), suggested=j,
        models=tuple(v[0] for v in vs), confidences=tuple(round(v[1], 6) for v in vs),
        thresholds=tuple(round(v[2], 6) for v in vs), models_total=int(seen[img]))
        for img, (j, vs) in best.items() if len(vs) >= min_models]
    found.sort(key=lambda c: (-len(c.models), -c.score, c.id))
    return LabelErrorSearch(tuple(found), used, dropped, len(ids), acc)


@dataclass(frozen=True)
class LabelErrorQueueing:
    search: LabelErrorSearch
    batch: str
    queued: int
    not_under_review: int


def queue_label_errors(home=None, board=None, version: str | None = None, predictions=None,
                       min_models: int = DEFAULT_MIN_MODELS,
                       min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                       min_accuracy: float = 0.0) -> LabelErrorQueueing:
    """Find label-error candidates among the images under review (labels as review has them
    now) from a board's verified results on ``version`` or a ``predictions`` table, and queue
    them in the review store under a batch named after the evidence."""
    from ..review import ReviewStore

    if (predictions is None) == (version is None):
        raise InvalidValueError("give either --version (a board's verified results on that "
                                "dataset version) or --predictions FILE, not both")
    if predictions is not None:
        table, batch = read_predictions_table(predictions), f"predictions {Path(predictions).name}"
    else:
        board = Path(board or "leaderboard")
        table = board_predictions(board, version)
        batch = f"board {board.name} v{str(version).removeprefix('v')}"
    with ReviewStore(home) as store:
        search = find_label_errors(table, store.current_labels(), min_models, min_confidence,
                                   min_accuracy)
        res = store.import_label_errors(search.candidates, batch)
    return LabelErrorQueueing(search, res.batch, res.queued, res.not_under_review)
