"""The records that flow between stages, and the parquet schemas they are written with.

A *source table* has one row per image (SOURCE_SCHEMA); a *candidates* table is what mining hands to
review and publish; review exports decisions as DECISION_SCHEMA tables. Each dataclass validates itself on
construction; each table carries ``imagenet_hard.schema_version`` in its parquet metadata.

Source tables have their own version: 2 added ``label_paper`` (the authors' single ImageNet class of
an ObjectNet image, see ``imagenet_hard.label_rules``). A version-1 source table is still read, with
an empty ``label_paper``; the rule that needs it then asks for a rebuild with ``--force``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .catalog import file_stem
from .errors import InvalidValueError, MissingFileError
from .files import atomic_path, is_sha256
from .home import inside_home
from .labels import LABEL_SPACES, validate_label

SCHEMA_VERSION = "1"          # candidates, decisions and every other table
SOURCE_SCHEMA_VERSION = "2"   # source tables (META_SOURCE set)
_OLD_SOURCE_VERSIONS = ("1",)  # read, with an empty label_paper column
META_VERSION = b"imagenet_hard.schema_version"
META_SOURCE = b"imagenet_hard.source"
META_LABEL_SPACES = b"imagenet_hard.label_spaces"

SOURCE_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("origin", pa.string()),
    ("path", pa.string()),
    ("label", pa.list_(pa.int64())),
    ("english_label", pa.list_(pa.string())),
    ("label_space", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("sha256", pa.string()),
    ("label_paper", pa.list_(pa.int64())),  # null except where a source defines it (ObjectNet)
])

REJECT_SCHEMA = pa.schema([("path", pa.string()), ("reason", pa.string())])

CANDIDATE_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source", pa.string()),          # source table name, e.g. "imagenet_a"
    ("origin", pa.string()),
    ("label", pa.list_(pa.int64())),
    ("label_space", pa.string()),
    ("top5", pa.list_(pa.int64())),   # judge's top-5 (within the label space) on its most confident crop
    ("top5_prob", pa.list_(pa.float32())),
    ("best_crop", pa.int16()),        # index 0..323 of that crop (zoom's 9*s + 3*i + j)
])

DECISION_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("verdict", pa.string()),
    ("reason", pa.string()),
    ("tags", pa.list_(pa.string())),
    ("note", pa.string()),
    ("reviewer", pa.string()),
    ("at", pa.timestamp("us", tz="UTC")),
])


def make_id(source: str, member_path: str) -> str:
    """Stable id from the source name and the file's path inside its archive."""
    member = member_path.replace("\\", "/").lstrip("./")
    return f"{file_stem(source)}/{member}"


def id_source(image_id: str) -> str:
    """The source (file) name an id was made from by :func:`make_id`."""
    return image_id.split("/", 1)[0]


@dataclass(frozen=True)
class SourceRow:
    id: str
    origin: str
    path: str
    label: list[int]
    english_label: list[str]
    label_space: str
    width: int
    height: int
    sha256: str
    label_paper: list[int] | None = None

    def __post_init__(self):
        if not self.id or ".." in self.id.split("/"):
            raise InvalidValueError(f"bad id {self.id!r}")
        inside_home(".", self.path, f"source row {self.id!r}")   # the rule every reader applies
        label = validate_label(self.label)
        object.__setattr__(self, "label", label)
        if len(self.english_label) != len(label):
            raise InvalidValueError(
                f"{self.id}: {len(label)} labels but {len(self.english_label)} english labels"
            )
        if self.label_space not in LABEL_SPACES:
            raise InvalidValueError(
                f"{self.id}: label_space {self.label_space!r} not one of {', '.join(LABEL_SPACES)}"
            )
        if self.width <= 0 or self.height <= 0:
            raise InvalidValueError(f"{self.id}: size must be positive, got {self.width}x{self.height}")
        if not is_sha256(self.sha256):
            raise InvalidValueError(f"{self.id}: sha256 must be 64 lowercase hex digits")
        if self.label_paper is not None:
            paper = validate_label(self.label_paper)
            if not set(paper) <= set(label):
                raise InvalidValueError(f"{self.id}: label_paper {paper} is not among label {label}")
            object.__setattr__(self, "label_paper", paper)


@dataclass(frozen=True)
class Reject:
    path: str
    reason: str


def _metadata(extra: dict[bytes, bytes] | None) -> dict[bytes, bytes]:
    extra = extra or {}
    version = SOURCE_SCHEMA_VERSION if META_SOURCE in extra else SCHEMA_VERSION
    return {META_VERSION: version.encode(), **extra}


def write_table(records, schema: pa.Schema, dest: str | os.PathLike,
                metadata: dict[bytes, bytes] | None = None) -> Path:
    """Write dataclass records (or dicts) as one parquet file, atomically."""
    rows = [asdict(r) if hasattr(r, "__dataclass_fields__") else dict(r) for r in records]
    table = pa.Table.from_pylist(rows, schema=schema.with_metadata(_metadata(metadata)))
    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp)
    return Path(dest)


def write_source_table(rows: list[SourceRow], dest, source: str,
                       label_spaces: dict[str, list[int]] | None = None,
                       metadata: dict[bytes, bytes] | None = None) -> Path:
    """Rows sorted by id; ``metadata`` adds a builder's own keys (e.g. how a table was made)."""
    meta = {**(metadata or {}), META_SOURCE: source.encode()}
    if label_spaces:
        meta[META_LABEL_SPACES] = json.dumps(label_spaces, sort_keys=True).encode()
    rows = sorted(rows, key=lambda r: r.id)
    return write_table(rows, SOURCE_SCHEMA, dest, meta)


def read_table(path: str | os.PathLike, what: str = "table") -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{what} {path} does not exist")
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    version = meta.get(META_VERSION, b"?").decode()
    if META_SOURCE in meta:
        if version in _OLD_SOURCE_VERSIONS:
            return _upgrade_source_table(table)
        if version == SOURCE_SCHEMA_VERSION:
            return table
        source = meta[META_SOURCE].decode()
        raise InvalidValueError(
            f"{path} has source-table version {version}, this imagenet-hard reads "
            f"{SOURCE_SCHEMA_VERSION}; rebuild it with `imhard build --source {source} --force`")
    if version != SCHEMA_VERSION:
        raise InvalidValueError(
            f"{path} has schema version {version}, this imagenet-hard reads {SCHEMA_VERSION}; rebuild it"
        )
    return table


def _upgrade_source_table(table: pa.Table) -> pa.Table:
    """A version-1 source table as version 2: ``label_paper`` added, empty (unknown)."""
    if "label_paper" not in table.column_names:
        empty = pa.nulls(table.num_rows, pa.list_(pa.int64()))
        table = table.append_column("label_paper", empty)
    meta = {**(table.schema.metadata or {}), META_VERSION: SOURCE_SCHEMA_VERSION.encode()}
    return table.replace_schema_metadata(meta)


def table_label_spaces(table: pa.Table) -> dict[str, list[int]]:
    """Label spaces recorded by a builder (e.g. ``objectnet_113``), from parquet metadata."""
    raw = (table.schema.metadata or {}).get(META_LABEL_SPACES)
    return json.loads(raw) if raw else {}
