"""A mining run on disk as one typed handle: ``open_run(name) -> MiningRun``, ``list_runs()``.

This module is the only place that knows the layout of ``<home>/mining/<run>/``::

    run.json                     RunRecord: settings pinned at start (judge, sources, mode, …)
    shards/shard-NNNNN.parquet   one per finished shard, written once, atomically (SHARD_SCHEMA)
    candidates.parquet           images no crop got right (records.CANDIDATE_SCHEMA)
    summary.json                 RunSummary: counts, forward passes, throughput
    judges.parquet               ensemble runs: each judge's verdict per image (JUDGE_VERDICT_SCHEMA)

Review, publish, the demo and the CLI read runs through :class:`MiningRun`; mining writes them
through it too. The records are frozen dataclasses checked on construction, so a hand-edited or
truncated file fails when it is opened, with the file named, not three stages later.
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from .. import home as homes
from .. import jobs
from ..errors import ImHardError, InvalidValueError, MissingFileError
from ..files import is_sha256, write_json_atomic
from ..mining_protocol import MiningProtocol, recorded_math
from ..records import CANDIDATE_SCHEMA, read_table, write_table

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
CANDIDATES_FILE = "candidates.parquet"
SHARDS_DIR = "shards"
JUDGES_FILE = "judges.parquet"
#: How an ensemble combines its judges' verdicts: an image is a candidate when all of them, a
#: majority, or any one of them gets none of its crops right.
RULES = ("all", "majority", "any")
META_SHARD = b"imagenet_hard.mining_shard"

RUN_FORMAT = "1"
SUMMARY_VERSION = 1
MODES = ("early-exit", "exhaustive")
#: Settings a resumed run must share with the run it continues: what it judges, and every knob
#: that changes a verdict (the protocol's, and the weights file's hash).
PINNED = ("judge", "sources", "exhaustive", "shard_size", "crop_order", "images", "ids_sha256",
          "protocol", "normalization", "precision", "objectnet_labels", "weights_sha256",
          "judges", "precisions", "rule", "math", "compile")

#: One row per judged image. ``label``/``label_space`` are the source table's;
#: ``judged_label``/``judged_label_space`` what each crop's top-1 was checked against (they
#: differ only for ObjectNet under the ``paper`` rule). ``first_correct_crop`` is the earliest
#: correct crop in the run's crop order (the one that settled the image; null for candidates). ``best_crop``/``top5`` are
#: over the crops evaluated. ``mask`` (exhaustive runs only; null otherwise) holds 324 booleans in
#: transform-index order (``9*s + 3*i + j``): DuckDB reads it as ``BOOLEAN[]``
#: (``mask[idx + 1]``, ``list_sum(mask)``), pyarrow/numpy as a list column.
#: ``one_crop_correct`` (exhaustive runs only) is the verdict on the standard 1-crop (resize 256,
#: centre crop 224), judged besides the 324 and counted in ``n_forward``.
SHARD_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source", pa.string()),
    ("origin", pa.string()),
    ("label", pa.list_(pa.int64())),
    ("label_space", pa.string()),
    ("judged_label", pa.list_(pa.int64())),   # what the verdict checked, under the run's
    ("judged_label_space", pa.string()),      # ObjectNet rule (null in runs made before it)
    ("correct", pa.bool_()),
    ("first_correct_crop", pa.int16()),
    ("n_forward", pa.int16()),
    ("best_crop", pa.int16()),
    ("top5", pa.list_(pa.int64())),
    ("top5_prob", pa.list_(pa.float32())),
    ("n_correct", pa.int16()),
    ("mask", pa.list_(pa.bool_())),
    ("one_crop_correct", pa.bool_()),
])


#: One row per (image, judge) of an ensemble run: ``correct`` is null where the judge was not
#: needed (earlier judges had settled the image under the rule); ``order`` is the judge's place.
JUDGE_VERDICT_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("judge", pa.string()),
    ("precision", pa.string()),
    ("order", pa.int16()),
    ("correct", pa.bool_()),
    ("first_correct_crop", pa.int16()),
    ("n_forward", pa.int16()),
    ("best_crop", pa.int16()),
    ("top5", pa.list_(pa.int64())),
    ("top5_prob", pa.list_(pa.float32())),
])


def _need(ok: bool, what: str, value) -> None:
    if not ok:
        raise InvalidValueError(f"{what}, got {value!r}")


def _count(name: str, value) -> None:
    _need(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
          f"{name} must be a whole number ≥ 0", value)


def _rate(name: str, value) -> None:
    _need(value is None or (isinstance(value, int | float) and not isinstance(value, bool)
                            and math.isfinite(value) and value >= 0),
          f"{name} must be a number ≥ 0 or null", value)


def _names(name: str, value) -> None:
    _need(isinstance(value, tuple) and value and all(isinstance(v, str) and v for v in value),
          f"{name} must be a non-empty list of names", value)


def _from_json(cls, data, path: Path):
    """Build ``cls`` from a JSON object, naming ``path`` and the keys when it does not fit."""
    if not isinstance(data, dict):
        raise InvalidValueError(f"{path} holds {type(data).__name__}, not a JSON object")
    known = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    unknown, missing = sorted(set(data) - known), sorted(required - set(data))
    if unknown or missing:
        raise InvalidValueError(
            f"{path} does not have the shape this imagenet-hard writes (missing: "
            f"{', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'})")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**kw)
    except InvalidValueError as exc:
        raise InvalidValueError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class RunRecord:
    """``run.json``: what a run judges and how, pinned when it starts (a resume must match)."""

    judge: str
    sources: tuple[str, ...]
    exhaustive: bool
    shard_size: int
    crop_order: dict
    images: int
    shards: int
    ids_sha256: str
    created: str
    format: str = RUN_FORMAT
    # The protocol and its knobs (``mining_protocol.MiningProtocol``); null in runs made before they existed.
    protocol: str | None = None
    normalization: str | None = None
    precision: str | None = None
    objectnet_labels: str | None = None
    protocol_overrides: tuple[str, ...] = ()
    # A weights file given by hand (--weights): where it was and its SHA-256 (the one pinned).
    weights: str | None = None
    weights_sha256: str | None = None
    # An ensemble run: its judges in the order they ran (cheapest first), each one's precision,
    # and the rule combining them; empty and null for a single judge.
    judges: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    rule: str | None = None
    # How the judge computes (mining_protocol.math_mode): fp32, "bf16 autocast", "fp16 weights
    # (clip.load)" ...; null in runs made before it was recorded, which ran autocast at their
    # precision (math_mode() says so, and a resume compares that).
    math: str | None = None
    # Whether the judge ran through torch.compile (imhard mine --compile): its fused kernels
    # round otherwise than eager ones, so a resume keeps it. Runs made before it: false.
    compile: bool = False

    def __post_init__(self):
        _need(self.format == RUN_FORMAT, f"run format must be {RUN_FORMAT!r} (rerun the mining "
              "job in a new run)", self.format)
        _need(isinstance(self.judge, str) and bool(self.judge), "judge must be a name", self.judge)
        _names("sources", self.sources)
        _need(isinstance(self.exhaustive, bool), "exhaustive must be true or false",
              self.exhaustive)
        _need(isinstance(self.compile, bool), "compile must be true or false", self.compile)
        _count("images", self.images)
        _count("shard_size", self.shard_size)
        _need(self.shard_size >= 1, "shard_size must be at least 1", self.shard_size)
        shards = jobs.count(self.images, self.shard_size)
        _need(self.shards == shards, f"shards must be ceil(images / shard_size) = {shards}",
              self.shards)
        _need(isinstance(self.crop_order, dict), "crop_order must be an object", self.crop_order)
        _need(is_sha256(self.ids_sha256),
              "ids_sha256 must be 64 lowercase hex digits", self.ids_sha256)
        _need(self.weights_sha256 is None or is_sha256(self.weights_sha256),
              "weights_sha256 must be 64 lowercase hex digits or null", self.weights_sha256)
        _need(self.rule is None or self.rule in RULES, f"rule must be one of {', '.join(RULES)} "
              "or null", self.rule)
        _need((self.rule is None) == (not self.judges) and len(self.precisions) == len(self.judges),
              "an ensemble run names its rule, its judges and one precision per judge",
              (self.rule, self.judges, self.precisions))
        knobs = (self.normalization, self.precision, self.objectnet_labels)
        _need(self.protocol is not None or all(k is None for k in knobs),
              "knobs need the protocol they belong to: protocol must be a name", self.protocol)
        if self.protocol is not None:
            try:
                self.protocol_record()
            except ImHardError as exc:
                raise InvalidValueError(f"protocol: {exc}") from None

    def protocol_record(self) -> MiningProtocol | None:
        """The run's protocol; None for a run made before protocols were recorded."""
        if self.protocol is None:
            return None
        return MiningProtocol(self.protocol, self.normalization, self.precision, self.objectnet_labels,
                        self.protocol_overrides)

    def math_mode(self) -> str | None:
        """How the run's judge computes: recorded, or implied for a run made before ``math``."""
        return recorded_math(self.precision, self.math)

    def to_json(self) -> dict:
        return {**asdict(self), "sources": list(self.sources),
                "protocol_overrides": list(self.protocol_overrides), "judges": list(self.judges),
                "precisions": list(self.precisions)}

    @classmethod
    def from_json(cls, data, path: Path) -> RunRecord:
        return _from_json(cls, data, path)


@dataclass(frozen=True)
class OriginCounts:
    """Images judged and candidates found for one origin."""

    images: int
    candidates: int

    def __post_init__(self):
        _count("images", self.images)
        _count("candidates", self.candidates)
        _need(self.candidates <= self.images,
              f"candidates must be at most the {self.images} images", self.candidates)


@dataclass(frozen=True)
class RunSummary:
    """``summary.json``: what a finished run found and what it cost.

    ``computed_*`` and the rates cover the images this invocation judged (a resumed run reuses
    ``resumed_images`` from finished shards); the rates are null when no time was measured.
    """

    judge: str
    sources: tuple[str, ...]
    mode: str
    crop_order: dict
    crops_backend: str
    images: int
    candidates: int
    forward_passes: int
    forward_passes_per_image: float
    seconds: float
    computed_images: int
    computed_forward_passes: int
    images_per_s: float | None
    crops_per_s: float | None
    resumed_images: int
    per_origin: dict[str, OriginCounts]
    shard_size: int
    shards: int
    batch_size: int
    world_size: int
    device: str
    judge_flops_per_image: float | None = None
    schema_version: int = SUMMARY_VERSION
    protocol: MiningProtocol | None = None  # null in runs made before protocols were recorded

    def __post_init__(self):
        _need(self.schema_version == SUMMARY_VERSION,
              f"schema_version must be {SUMMARY_VERSION}", self.schema_version)
        _need(isinstance(self.judge, str) and bool(self.judge), "judge must be a name", self.judge)
        _names("sources", self.sources)
        _need(self.mode in MODES, f"mode must be one of {', '.join(MODES)}", self.mode)
        for name in ("images", "candidates", "forward_passes", "computed_images",
                     "computed_forward_passes", "resumed_images", "shard_size", "shards",
                     "batch_size", "world_size"):
            _count(name, getattr(self, name))
        for name in ("forward_passes_per_image", "seconds", "images_per_s", "crops_per_s",
                     "judge_flops_per_image"):
            _rate(name, getattr(self, name))
        _need(self.candidates <= self.images,
              f"candidates must be at most the {self.images} images", self.candidates)
        _need(self.computed_images + self.resumed_images == self.images,
              f"computed_images + resumed_images must be the {self.images} images",
              (self.computed_images, self.resumed_images))
        self._check_per_origin()
        if isinstance(self.protocol, dict):
            try:
                object.__setattr__(self, "protocol", MiningProtocol.from_json(self.protocol))
            except ImHardError as exc:
                raise InvalidValueError(f"protocol: {exc}") from None
        _need(self.protocol is None or isinstance(self.protocol, MiningProtocol),
              "protocol must be an object or null", self.protocol)

    def _check_per_origin(self) -> None:
        _need(isinstance(self.per_origin, dict), "per_origin must be an object", self.per_origin)
        per = {o: c if isinstance(c, OriginCounts) else OriginCounts(**c)
               for o, c in self.per_origin.items()}
        object.__setattr__(self, "per_origin", per)
        images = sum(c.images for c in per.values())
        cands = sum(c.candidates for c in per.values())
        _need((images, cands) == (self.images, self.candidates),
              f"per_origin must add up to {self.images} images and {self.candidates} candidates",
              (images, cands))

    @property
    def exhaustive(self) -> bool:
        return self.mode == "exhaustive"

    def to_json(self) -> dict:
        return {**asdict(self), "sources": list(self.sources)}

    @classmethod
    def from_json(cls, data, path: Path) -> RunSummary:
        if isinstance(data, dict) and "schema_version" not in data:
            # Summaries written before the field existed have exactly this version's shape.
            data = {**data, "schema_version": 1}
        try:
            return _from_json(cls, data, path)
        except TypeError as exc:  # per_origin entries with other keys
            raise InvalidValueError(f"{path}: per_origin entries must hold images and "
                                    f"candidates ({exc})") from None


def check_run_name(run: str) -> str:
    """A run name is one plain folder name under ``<home>/mining``."""
    if not run or run in (".", "..") or "/" in run or "\\" in run:
        raise InvalidValueError(f"--run {run!r} must be a plain folder name (no slashes)")
    return run


def run_folder(name: str, home=None) -> Path:
    """Where the run ``name`` lives: ``<home>/mining/<name>``."""
    return homes.mining_dir(home) / check_run_name(name)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidValueError(f"{path} is unreadable ({exc}); delete the folder {path.parent} "
                                "and mine the run again") from exc


@dataclass(frozen=True)
class MiningRun:
    """One run folder and its ``run.json``; the summary and tables are read when asked for."""

    dir: Path
    record: RunRecord

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def shards_dir(self) -> Path:
        return self.dir / SHARDS_DIR

    def shard_path(self, k: int) -> Path:
        return jobs.shard_file(self.shards_dir, k)

    def missing_shards(self) -> list[int]:
        return jobs.missing(map(self.shard_path, range(self.record.shards)))

    @property
    def candidates_path(self) -> Path:
        """The candidates file, for readers that query it in place (DuckDB's ``read_parquet``)."""
        return self.dir / CANDIDATES_FILE

    @property
    def finished(self) -> bool:
        """Whether the shards were merged (the summary is written last)."""
        return (self.dir / SUMMARY_FILE).is_file() and self.candidates_path.is_file()

    def _require_finished(self) -> None:
        if not self.finished:
            raise MissingFileError(
                f"mining run {self.name!r} has not finished ({self.dir} has no "
                f"{SUMMARY_FILE}); rerun `imhard mine` with --run {self.name} and the same "
                "settings to finish it (finished shards are kept)")

    @functools.cached_property
    def summary(self) -> RunSummary:
        self._require_finished()
        path = self.dir / SUMMARY_FILE
        return RunSummary.from_json(_read_json(path), path)

    def candidates(self) -> pa.Table:
        """The images no crop got right (CANDIDATE_SCHEMA columns), one row per id."""
        self._require_finished()
        table = read_table(self.candidates_path, what=f"candidates of run {self.name!r}")
        missing = [n for n in CANDIDATE_SCHEMA.names if n not in table.column_names]
        if missing:
            raise InvalidValueError(f"{self.candidates_path} lacks columns "
                                    f"{', '.join(missing)}; mine the run again")
        ids = table.column("id")
        if len(pc.unique(ids)) != len(ids):
            counts = pc.value_counts(ids).to_pylist()
            dup = next(c["values"] for c in counts if c["counts"] > 1)
            raise InvalidValueError(f"{self.candidates_path} lists {dup} twice; mine the run again")
        return table.select(CANDIDATE_SCHEMA.names)

    def results(self) -> pa.Table:
        """Every judged image (SHARD_SCHEMA rows, id order), e.g. exhaustive runs' masks."""
        missing = self.missing_shards()
        if missing:
            raise MissingFileError(
                f"run {self.name!r} lacks {len(missing)} of {self.record.shards} shards (first: "
                f"{self.shard_path(missing[0]).name}); rerun `imhard mine` with --run {self.name}")
        tables = [read_table(self.shard_path(k), what="mining shard")
                  for k in range(self.record.shards)]
        if not tables:
            return SHARD_SCHEMA.empty_table()
        return pa.concat_tables([_with_new_columns(t).select(SHARD_SCHEMA.names) for t in tables])

    # -- writing (the mining engine only) ------------------------------------------------------

    def check_resumable(self) -> bool:
        """Whether the run exists; raise if it was started with other pinned settings."""
        path = self.dir / RUN_FILE
        if not path.exists():
            return False
        recorded = RunRecord.from_json(_read_json(path), path)
        jobs.check_resume({**vars(recorded), "math": recorded.math_mode()},
                          {**vars(self.record), "math": self.record.math_mode()}, PINNED,
                          job=f"run {self.name!r}",
                          noun="run", fix=f"pass another --run name, or delete {self.dir} to "
                          "start it again")
        return True

    def start(self) -> None:
        """Write ``run.json`` for a new run (a resumed run keeps its own)."""
        if not self.check_resumable():
            write_json_atomic(self.dir / RUN_FILE, self.record.to_json())

    @property
    def judges_path(self) -> Path:
        """An ensemble run's per-judge verdicts (absent for a single judge)."""
        return self.dir / JUDGES_FILE

    def judge_verdicts(self) -> pa.Table:
        """Each judge's verdict per image of an ensemble run (JUDGE_VERDICT_SCHEMA)."""
        return read_table(self.judges_path, what=f"judge verdicts of run {self.name!r}")

    def write_judge_verdicts(self, rows: list[dict]) -> Path:
        return write_table(rows, JUDGE_VERDICT_SCHEMA, self.judges_path)

    def write_shard(self, k: int, rows: list[dict], meta: dict) -> Path:
        return write_table(rows, SHARD_SCHEMA, self.shard_path(k),
                           {META_SHARD: json.dumps(meta).encode()})

    def finish(self, candidates: list[dict], summary: RunSummary) -> MiningRun:
        """Write the candidates, then the summary that marks the run finished; a fresh handle."""
        write_table(candidates, CANDIDATE_SCHEMA, self.candidates_path)
        write_json_atomic(self.dir / SUMMARY_FILE, summary.to_json())
        return MiningRun(self.dir, self.record)


#: Shard columns added after the first runs were written: older shards read with them null.
LATER_COLUMNS = ("judged_label", "judged_label_space", "one_crop_correct")


def _with_new_columns(table: pa.Table) -> pa.Table:
    """A shard written before a column of :data:`LATER_COLUMNS` existed, with it null."""
    for name in LATER_COLUMNS:
        if name not in table.column_names:
            field = SHARD_SCHEMA.field(name)
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table


def _is_name(text: str) -> bool:
    try:
        check_run_name(text)
    except InvalidValueError:
        return False
    return True


def open_run(run: str | os.PathLike | MiningRun, home=None) -> MiningRun:
    """The run named ``run`` under ``<home>/mining``, or the run folder at path ``run``."""
    if isinstance(run, MiningRun):
        return run
    text = os.fspath(run)
    if not text:
        raise InvalidValueError("a mining run name or folder is needed (see `imhard mine`)")
    tried = [run_folder(text, home)] if _is_name(text) else []
    tried.append(Path(text).expanduser().absolute())
    for folder in dict.fromkeys(tried):
        path = folder / RUN_FILE
        if path.is_file():
            return MiningRun(folder, RunRecord.from_json(_read_json(path), path))
    runs = list_runs(home)
    have = (f"runs under {homes.mining_dir(home)}: {', '.join(runs)}" if runs else
            f"no runs under {homes.mining_dir(home)} yet; make one with `imhard mine`")
    looked = " and ".join(str(f / RUN_FILE) for f in dict.fromkeys(tried))
    raise MissingFileError(f"no mining run {text!r} (looked for {looked}); {have}")


def list_runs(home=None) -> list[str]:
    """Names of the runs under ``<home>/mining`` (finished or not), sorted."""
    folder = homes.mining_dir(home)
    if not folder.is_dir():
        return []
    return sorted(p.parent.name for p in folder.glob(f"*/{RUN_FILE}") if p.is_file())
