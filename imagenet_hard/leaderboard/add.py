"""``imhard leaderboard add``: accept a result into ``leaderboard/results/`` only after checking
its schema and metadata (typed, http(s) URLs only), its dataset fingerprint, and that its
predictions parquet supports every number the board shows — accuracy, its interval, top-5, ECE,
each per origin (:mod:`imagenet_hard.score.check`) — and, when the dataset is here, that the
predictions' correct flags follow from its labels."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidValueError, MissingFileError
from ..score.check import consistency_problems
from ..score.dataset import open_dataset
from ..score.result import load_result, predictions_path, read_predictions

_FP = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Added:
    result: Path
    predictions: Path
    name: str
    checked_labels: bool      # the predictions were re-checked against the dataset's labels


def slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s or "result"


def _expected(result, fingerprint: str | None, dataset, home):
    """(expected fingerprint, opened dataset or None)."""
    if fingerprint:
        if not _FP.match(fingerprint):
            raise InvalidValueError("--fingerprint must be 64 lowercase hex digits")
        return fingerprint, None
    try:
        sds = open_dataset(dataset, result.dataset["split"], home)
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
    problems = consistency_problems(result, table, sds)
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
