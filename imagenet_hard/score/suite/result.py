"""The record of one suite run: :class:`SuiteResult` (one JSON) and a predictions parquet per set
beside it (``NAME.suite.json`` → ``NAME.suite.<set>.predictions.parquet``).

Each entry of ``sets`` has the shape of a single-set result (``dataset`` with the set's fingerprint,
``metrics`` with the Wilson interval, ``per_origin``, ``predictions`` file and SHA-256) plus the
set's ``name`` and ``protocol``; :meth:`SuiteResult.set_result` turns one into a
:class:`~imagenet_hard.score.result.ScoreResult`, so every check that reads single results (numbers
recomputed from predictions, labels re-checked) reads suite sets the same way. ``imagenet_c`` holds
the ImageNet-C aggregates (``protocols.imagenet_c_summary``). ``tta`` is the test-time augmentation
every set was scored with (``imhard score --suite --tta MODE``; the same record as a single
result's ``tta``), None for a plain suite.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...catalog import slug
from ...errors import InvalidValueError
from ..contract import metadata_problems
from ..protocols import PROTOCOLS
from ..result import Record, ScoreResult, read_result_json
from ..tta import TtaMode

SUITE_SCHEMA_VERSION = "1"
KIND = "suite"
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*\.parquet$")
_SET = re.compile(r"^[a-z0-9][a-z0-9_.\-]*(/[a-z0-9][a-z0-9_.\-]*)*$")
SET_KEYS = ("name", "protocol", "dataset", "metrics", "per_origin", "predictions")


@dataclass(frozen=True)
class SuiteResult(Record):
    submission: dict          # name, file, sha256
    sets: list                # [{name, protocol, dataset, metrics, per_origin, predictions}]
    environment: dict
    date: str
    metadata: dict = field(default_factory=dict)
    imagenet_c: dict | None = None
    tta: dict | None = None   # score.tta: the mode every set was scored with (None: plain)
    kind: str = KIND
    schema_version: str = SUITE_SCHEMA_VERSION
    WHAT = "suite result"

    def __post_init__(self):
        if self.kind != KIND or self.schema_version != SUITE_SCHEMA_VERSION:
            raise InvalidValueError(f"suite result kind {self.kind!r} version "
                                    f"{self.schema_version!r}; this imagenet-hard reads "
                                    f"{KIND} version {SUITE_SCHEMA_VERSION}")
        problems = metadata_problems(self.metadata) if isinstance(self.metadata, dict) else [
            "metadata must be a JSON object"]
        if problems:
            raise InvalidValueError(f"suite result metadata: {'; '.join(problems)}")
        if not isinstance(self.sets, list) or not self.sets:
            raise InvalidValueError("suite result field 'sets' must be a non-empty list")
        names = []
        for entry in self.sets:
            self._check_set(entry)
            names.append(entry["name"])
        if len(set(names)) != len(names):
            raise InvalidValueError("suite result lists a set twice")
        if self.tta is not None:
            TtaMode.from_record(self.tta, "suite result")
        for k in range(len(self.sets)):
            self.set_result(k)  # every set must also be a valid single result

    @staticmethod
    def _check_set(entry) -> None:
        if not isinstance(entry, dict) or any(k not in entry for k in SET_KEYS):
            raise InvalidValueError(f"each suite set needs {', '.join(SET_KEYS)}")
        if not isinstance(entry["name"], str) or not _SET.match(entry["name"]) \
                or len(entry["name"]) > 100:
            raise InvalidValueError(f"suite set name {str(entry['name'])[:60]!r} is not a set name")
        if entry["protocol"] not in PROTOCOLS:
            raise InvalidValueError(f"suite set {entry['name']}: unknown protocol "
                                    f"{str(entry['protocol'])[:40]!r}")
        pred = entry["predictions"]
        if not isinstance(pred, dict) or not _FILE.match(str(pred.get("file", ""))):
            raise InvalidValueError(f"suite set {entry['name']}: predictions.file must be a file "
                                    "name beside the result (no folders)")

    def set_result(self, key: int | str) -> ScoreResult:
        """One set as a single-set result (its protocol's text as ``protocol``)."""
        entry = self.sets[key] if isinstance(key, int) else self.entry(key)
        return ScoreResult(submission=self.submission, dataset=entry["dataset"],
                           metrics=entry["metrics"], per_origin=entry["per_origin"],
                           environment=self.environment, date=self.date,
                           predictions=entry["predictions"], metadata=self.metadata,
                           protocol=PROTOCOLS.get(entry["protocol"]).text, tta=self.tta)

    def entry(self, name: str) -> dict:
        for e in self.sets:
            if e["name"] == name:
                return e
        raise InvalidValueError(f"the suite result has no set {name!r}")

    def summary(self) -> str:
        """A screenful: one line per set (ImageNet-C folded into its aggregates)."""
        how = "" if not self.tta else (f", every set with TTA {self.tta['mode']} ("
                                       f"{self.tta['n_crops']} crops, {self.tta['aggregate']} of "
                                       "their softmax)")
        lines = [f"{self.name}: {len(self.sets)} sets{how}",
                 f"  {'set':<26} {'protocol':<13} {'n':>7} {'top-1 %':>8} {'95% CI':>15} "
                 f"{'top-5 %':>8}"]
        for e in self.sets:
            if e["name"].startswith("imagenet-c/"):
                continue
            m = e["metrics"]
            lo, hi = m["accuracy_ci95"]
            lines.append(f"  {e['name']:<26} {e['protocol']:<13} {m['n']:>7} "
                         f"{100 * m['accuracy']:>8.2f} {100 * lo:>7.2f}–{100 * hi:<6.2f} "
                         f"{100 * m['top5_accuracy']:>8.2f}")
        lines += imagenet_c_lines(self.imagenet_c)
        return "\n".join(lines)


def imagenet_c_lines(summary: dict | None) -> list[str]:
    if not summary:
        return []
    pct = lambda x: "—" if x is None else f"{100 * x:.2f}"  # noqa: E731
    lines = ["  ImageNet-C top-1 error % per corruption (mean over its severities): "
             + ", ".join(f"{c} {pct(e)}" for c, e in summary["per_corruption"].items())]
    lines.append(f"  ImageNet-C mean error: {pct(summary['mean_error_benchmark'])} over "
                 f"{summary['benchmark_corruptions']} of 15 benchmark corruptions, "
                 f"{pct(summary['mean_error_held_out'])} over {summary['held_out_corruptions']} "
                 f"of 4 held-out ones{'' if summary['complete'] else ' (incomplete)'}")
    lines.append(f"  mCE {pct(summary['mce'])} (relative to AlexNet on the same tables)"
                 if summary["mce"] is not None else
                 "  mCE: unnormalised — no AlexNet result on these tables (--baseline)")
    return lines


def is_suite(path: str | Path) -> bool:
    """Whether a result file is a suite result (cheap: reads the JSON's ``kind``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("kind") == KIND


def load_suite(path: str | Path) -> SuiteResult:
    return SuiteResult.from_dict(read_result_json(path, "suite result"))


def suite_predictions_path(result_path: str | Path, set_name: str) -> Path:
    p = Path(result_path)
    stem = p.name.removesuffix(".json")
    return p.with_name(f"{stem}.{slug(set_name)}.predictions.parquet")
