"""The record of a scoring run: :class:`ScoreResult` (one set: ``NAME.json`` and
``NAME.predictions.parquet`` beside it) or :class:`SuiteResult` (``NAME.suite.json`` and
``NAME.suite.<set>.predictions.parquet`` per set). Each suite entry has the shape of a single
result (``dataset``, ``metrics``, ``per_origin``, ``predictions``) plus the set's ``name`` and
``protocol``, and :meth:`SuiteResult.set_result` turns one into a :class:`ScoreResult`, so every
check reads both the same way. Numbers are numbers; accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..catalog import slug
from ..errors import InvalidValueError, MissingFileError
from ..files import atomic_path, is_sha256, sha256_bytes, sha256_file, write_json_atomic
from .contract import metadata_problems
from .protocols import IMAGENET_HARD_TEXT as PROTOCOL
from .protocols import PROTOCOLS
from .tta import TtaMode

SCHEMA_VERSION = "1"


PREDICTIONS_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("origin", pa.string()),
    ("top5", pa.list_(pa.int64())),
    ("top5_prob", pa.list_(pa.float32())),
    ("correct", pa.bool_()),
    ("correct_top5", pa.bool_()),
])


class Record:
    """What a single result and a suite result share: the name shown, and their JSON."""

    WHAT = "result"

    @property
    def name(self) -> str:
        base = str(self.metadata.get("name") or self.submission["name"])
        return f"{base} (TTA {self.tta['mode']})" if self.tta else base

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict):
        return cls(**checked_fields(cls, data, cls.WHAT))


@dataclass(frozen=True)
class ScoreResult(Record):
    submission: dict          # name, file, sha256
    dataset: dict             # id, split, fingerprint, rows (in the split), scored, limit
    metrics: dict             # n, correct, accuracy, accuracy_ci95, top5_accuracy, ece, images_per_s
    per_origin: list          # [{origin, n, correct, accuracy, accuracy_ci95, top5_accuracy, ece}]
    environment: dict         # python, torch, torchvision, device, platform, imagenet_hard
    date: str
    predictions: dict         # file (relative to the JSON), sha256
    metadata: dict = field(default_factory=dict)
    protocol: str = PROTOCOL
    schema_version: str = SCHEMA_VERSION
    tta: dict | None = None   # test-time augmentation (score.tta): mode, crops, aggregation

    def __post_init__(self):
        if self.schema_version != SCHEMA_VERSION:
            raise InvalidValueError(f"result schema version {self.schema_version!r}; this "
                                    f"imagenet-hard reads version {SCHEMA_VERSION}")
        for key in ("submission", "dataset", "metrics", "environment", "predictions", "metadata"):
            if not isinstance(getattr(self, key), dict):
                raise InvalidValueError(f"result field {key!r} must be a JSON object, got "
                                        f"{type(getattr(self, key)).__name__}")
        if not isinstance(self.per_origin, list) or not all(
                isinstance(r, dict) and isinstance(r.get("origin"), str) for r in self.per_origin):
            raise InvalidValueError("result field 'per_origin' must be a list of objects with an "
                                    "'origin' name")
        for key, part in (("submission", "name"), ("dataset", "id")):
            value = getattr(self, key).get(part)
            if not isinstance(value, str) or not 0 < len(value) <= 1000 or not value.isprintable():
                raise InvalidValueError(f"result field {key}.{part} must be printable text of "
                                        f"1–1000 characters, got {value!r:.80}")
        problems = metadata_problems(self.metadata)
        if problems:
            raise InvalidValueError(f"result metadata: {'; '.join(problems)}")
        for key, part in (("submission", ("name", "sha256")),
                          ("dataset", ("id", "split", "fingerprint", "rows", "scored")),
                          ("metrics", ("n", "correct", "accuracy", "accuracy_ci95",
                                       "top5_accuracy", "ece")),
                          ("predictions", ("file", "sha256"))):
            missing = [k for k in part if k not in getattr(self, key)]
            if missing:
                raise InvalidValueError(f"result field {key!r} lacks {', '.join(missing)}")
        if not _FILE.match(str(self.predictions["file"])):
            raise InvalidValueError("result field predictions.file must be a file name beside "
                                    "the result (no folders), got "
                                    f"{str(self.predictions['file'])[:80]!r}")
        if not isinstance(self.dataset["split"], str) or not SPLIT.fullmatch(self.dataset["split"]):
            raise InvalidValueError("result field dataset.split must be a split name (letters, "
                                    f"digits, _ and .), got {str(self.dataset['split'])[:40]!r}")
        for key, value in (("submission.sha256", self.submission["sha256"]),
                           ("dataset.fingerprint", self.dataset["fingerprint"])):
            if not is_sha256(value):
                raise InvalidValueError(f"{key} must be 64 lowercase hex digits")
        m = self.metrics
        for k in ("accuracy", "top5_accuracy", "ece"):
            if not isinstance(m[k], (int, float)) or not 0 <= m[k] <= 1:
                raise InvalidValueError(f"metrics.{k} must be a number in [0, 1], got {m[k]!r}")
        if not (isinstance(m["n"], int) and isinstance(m["correct"], int) and 0 <= m["correct"] <= m["n"]):
            raise InvalidValueError(f"metrics.correct ({m['correct']!r}) and n ({m['n']!r}) must "
                                    "be integers with 0 ≤ correct ≤ n")
        ci = m["accuracy_ci95"]
        if not (isinstance(ci, list) and len(ci) == 2
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in ci)):
            raise InvalidValueError(f"metrics.accuracy_ci95 must be [low, high], got {ci!r:.80}")
        if self.tta is not None:
            TtaMode.from_record(self.tta)  # unknown, or not what that mode records: refused

    @property
    def complete(self) -> bool:
        return self.dataset["scored"] == self.dataset["rows"]

    def summary(self) -> str:
        """A screenful: headline numbers, then the per-origin table."""
        m = self.metrics
        lo, hi = m["accuracy_ci95"]
        lines = [
            f"{self.name} on {self.dataset['id']} ({self.dataset['split']}, "
            f"{self.dataset['scored']} of {self.dataset['rows']} rows, fingerprint "
            f"{self.dataset['fingerprint'][:12]})",
            f"  top-1 accuracy {100 * m['accuracy']:.2f}% (95% Wilson CI {100 * lo:.2f}–"
            f"{100 * hi:.2f}), top-5 {100 * m['top5_accuracy']:.2f}%, ECE {m['ece']:.4f}, "
            f"{m.get('images_per_s', 0):.1f} images/s on {self.environment.get('device', '?')}",
            f"  {'origin':<24} {'n':>6} {'top-1 %':>8} {'95% CI':>15} {'top-5 %':>8}",
        ]
        lines += [_row(f"{row['origin']:<24} {row['n']:>6}", row) for row in self.per_origin]
        return "\n".join(lines)


def _row(head: str, m: dict) -> str:
    lo, hi = m["accuracy_ci95"]
    return (f"  {head} {100 * m['accuracy']:>8.2f} {100 * lo:>7.2f}–{100 * hi:<6.2f} "
            f"{100 * m['top5_accuracy']:>8.2f}")


def checked_fields(cls, data: dict, what: str) -> dict:
    """``data`` when its keys are exactly a dataclass's fields (those with defaults optional),
    else one sentence naming the unknown or missing ones."""
    fields = cls.__dataclass_fields__
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidValueError(f"{what} has unknown field(s) {', '.join(unknown)}")
    missing = [name for name, f in fields.items()
               if name not in data and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise InvalidValueError(f"{what} lacks the field(s) {', '.join(missing)}; a {what} "
                                "is what `imhard score` writes")
    return data


def predictions_path(result_path: str | Path) -> Path:
    p = Path(result_path)
    return p.with_name(p.name.removesuffix(".json") + ".predictions.parquet")


def read_result_json(path: str | Path, what: str = "result") -> dict:
    """The JSON object in result file ``path``, or one sentence saying why there is none."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidValueError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidValueError(f"{path}: expected a JSON object")
    return data


def load_result(path: str | Path) -> ScoreResult:
    return ScoreResult.from_dict(read_result_json(path))


def write_predictions(path: str | Path, rows: dict | pa.Table) -> str:
    """Write the per-image table (``rows``: its columns, or the table) atomically; return its
    SHA-256."""
    table = rows if isinstance(rows, pa.Table) else predictions_table(rows)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return sha256_file(path)


def predictions_table(rows: dict) -> pa.Table:
    return pa.Table.from_pydict(rows, schema=PREDICTIONS_SCHEMA.with_metadata(
        {b"imagenet_hard.schema_version": SCHEMA_VERSION.encode()}))


def predictions_bytes(result_path: str | Path, result: ScoreResult) -> tuple[Path, bytes]:
    """The predictions file beside a result and its bytes, once their SHA-256 is the one the
    result records (the bytes hashed are the bytes returned: no swap between check and read)."""
    path = Path(result_path).parent / result.predictions["file"]
    if not path.is_file():
        raise MissingFileError(f"predictions {path} (named by {result_path}) do not exist; a "
                               "result travels with its .predictions.parquet")
    data = path.read_bytes()
    if sha256_bytes(data) != result.predictions["sha256"]:
        raise InvalidValueError(f"{path} does not match the SHA-256 recorded in {result_path}; "
                                "the predictions were changed after scoring")
    return path, data


def read_predictions(result_path: str | Path, result: ScoreResult,
                     checked: tuple[Path, bytes] | None = None,
                     columns: list[str] | None = None) -> pa.Table:
    """The predictions beside a result, checked against the hash the result records
    (``checked``: what :func:`predictions_bytes` returned for it, when the caller has it).
    ``columns``: read only these, once the file's schema is checked whole."""
    path, data = checked or predictions_bytes(result_path, result)
    if columns is None:
        table = pq.read_table(pa.BufferReader(data))
        schema = table.schema
    else:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        schema = parquet.schema_arrow
    if not schema.remove_metadata().equals(PREDICTIONS_SCHEMA):
        raise InvalidValueError(f"{path} has columns {schema.names}; expected "
                                f"{PREDICTIONS_SCHEMA.names}")
    return table if columns is None else parquet.read(columns=columns)


SUITE_SCHEMA_VERSION = "1"
KIND = "suite"
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*\.parquet$")
#: A split's name as ``datasets`` allows it (``^\w+(\.\w+)*$``): no path separators or ``..``.
SPLIT = re.compile(r"\w+(\.\w+)*")
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
        if not isinstance(self.sets, list) or not self.sets:
            raise InvalidValueError("suite result field 'sets' must be a non-empty list")
        names = []
        for entry in self.sets:
            self._check_set(entry)
            names.append(entry["name"])
        if len(set(names)) != len(names):
            raise InvalidValueError("suite result lists a set twice")
        for k in range(len(self.sets)):
            self.set_result(k)  # a valid single result each: metadata and tta checked there

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
        lines += [_row(f"{e['name']:<26} {e['protocol']:<13} {e['metrics']['n']:>7}", e["metrics"])
                  for e in self.sets if not e["name"].startswith("imagenet-c/")]
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
