"""``imhard leaderboard add``: accept a result into ``leaderboard/results/`` only after checking
its schema and metadata (typed, http(s) URLs only), its dataset fingerprint, and that its
predictions parquet supports every number the board shows — accuracy, its interval, top-5, ECE,
each per origin (:mod:`imagenet_hard.score.check`) — and, when the dataset is here, that the
predictions' correct flags follow from its labels. A suite result is checked set by set: every
set must be a full run; a set whose table is built here must have the same fingerprint, and its
labels are re-checked."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import catalog
from ..errors import InvalidValueError, MissingFileError
from ..files import is_sha256
from ..score.check import consistency_problems
from ..score.result import load_result, predictions_path, read_predictions
from ..score.sets import default_dataset, published_set


@dataclass
class Added:
    result: Path
    predictions: Path
    name: str
    checked_labels: bool      # the predictions were re-checked against the dataset's labels
    unchecked: list[str] | None = None   # suite sets whose tables are not here (labels not checked)


def slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s or "result"


def _expected(result, fingerprint: str | None, dataset, home):
    """(expected fingerprint, opened dataset or None)."""
    if fingerprint:
        if not is_sha256(fingerprint):
            raise InvalidValueError("--fingerprint must be 64 lowercase hex digits")
        return fingerprint, None
    try:
        sds = published_set(dataset, result.dataset["split"], home)
    except MissingFileError as exc:
        raise MissingFileError(f"{exc}. To accept results without the dataset here, pass "
                               "--fingerprint with the published dataset's fingerprint") from exc
    return sds.fingerprint, sds


def add_result(result_path: str | Path, board_dir: str | Path = "leaderboard",
               fingerprint: str | None = None, dataset=None, home=None,
               replace: bool = False) -> Added:
    """Check ``result_path`` (+ its predictions) and copy both into ``board_dir/results``."""
    result_path = Path(result_path)
    result = load_result(result_path)
    table = read_predictions(result_path, result)
    expected, sds = _expected(result, fingerprint, dataset, home)
    if result.dataset["fingerprint"] != expected:
        raise InvalidValueError(
            f"{result_path} was scored on dataset {result.dataset['fingerprint'][:12]}…, the board's "
            f"dataset is {expected[:12]}…; score it on the published dataset")
    if not result.complete:
        raise InvalidValueError(f"{result_path} scored {result.dataset['scored']} of "
                                f"{result.dataset['rows']} rows (--limit); the board takes full runs")
    problems = consistency_problems(result, table, sds.rows() if sds else None)
    if problems:
        raise InvalidValueError(f"{result_path} does not match its predictions: "
                                + "; ".join(problems))
    results = Path(board_dir) / "results"
    dest = results / f"{slug(result.name)}.json"
    if dest.exists() and not replace:
        raise InvalidValueError(f"{dest} exists; pass --replace to overwrite it")
    results.mkdir(parents=True, exist_ok=True)
    pred_dest = predictions_path(dest)
    shutil.copyfile(result_path.parent / result.predictions["file"], pred_dest)
    data = result.to_dict()
    data["predictions"] = {**result.predictions, "file": pred_dest.name}
    type(result).from_dict(data).write(dest)
    return Added(dest, pred_dest, result.name, checked_labels=sds is not None)


def _suite_set_problems(result, k: int, table, here: dict) -> tuple[list[str], bool]:
    """(problems, labels checked) of set ``k`` of a suite result."""
    one, entry = result.set_result(k), result.sets[k]
    if not one.complete:
        return [f"set {entry['name']} scored {one.dataset['scored']} of {one.dataset['rows']} "
                "rows (--limit); the board takes full runs"], False
    s = here.get(entry["name"])
    if s is not None and s.fingerprint != one.dataset["fingerprint"]:
        return [f"set {entry['name']} was scored on {one.dataset['fingerprint'][:12]}…, the "
                f"table here is {s.fingerprint[:12]}…"], False
    return consistency_problems(one, table, s.rows() if s else None), s is not None


def add_suite(result_path: str | Path, board_dir: str | Path = "leaderboard", home=None,
              dataset=None, replace: bool = False) -> Added:
    """Check a suite result (+ one predictions parquet per set) and copy it into the board."""
    from ..score.sets import IMAGENET_HARD_SET, built_tables
    from ..score.suite import load_suite, resolve_sets

    result_path = Path(result_path)
    result = load_suite(result_path)
    tables = [read_predictions(result_path, result.set_result(k)) for k in range(len(result.sets))]
    local = set(built_tables(home))
    if dataset is not None or default_dataset(home).is_dir():
        local.add(IMAGENET_HARD_SET)
    names = [e["name"] for e in result.sets if e["name"] in local]
    here = {s.name: s for s in (resolve_sets(names, dataset, home=home) if names else [])}
    problems, unchecked = [], []
    for k, table in enumerate(tables):
        found, checked = _suite_set_problems(result, k, table, here)
        problems += found
        unchecked += [] if checked else [result.sets[k]["name"]]
    if problems:
        raise InvalidValueError(f"{result_path} cannot be added: " + "; ".join(problems))
    results = Path(board_dir) / "results"
    dest = results / f"{slug(result.name)}.suite.json"
    if dest.exists() and not replace:
        raise InvalidValueError(f"{dest} exists; pass --replace to overwrite it")
    results.mkdir(parents=True, exist_ok=True)
    data = result.to_dict()
    for entry in data["sets"]:
        name = f"{dest.name.removesuffix('.json')}.{catalog.slug(entry['name'])}.predictions.parquet"
        shutil.copyfile(result_path.parent / entry["predictions"]["file"], results / name)
        entry["predictions"] = {**entry["predictions"], "file": name}
    type(result).from_dict(data).write(dest)
    return Added(dest, results, result.name, checked_labels=not unchecked, unchecked=unchecked)
