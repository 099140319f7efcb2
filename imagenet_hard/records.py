"""The records that flow between stages, and the parquet schemas they are written with.

A *source table* (DESIGN §3) has one row per image; a *candidates* table is what mining hands to
review and publish; review exports decisions as DECISION_SCHEMA tables. Each dataclass validates itself on
construction; each table carries ``imagenet_hard.schema_version`` in its parquet metadata.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import InvalidValueError, MissingFileError
from .files import atomic_path
from .labels import LABEL_SPACES, validate_label

SCHEMA_VERSION = "1"
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
    ("best_crop", pa.int16()),        # index 0..323 of that crop (DESIGN §5 order)
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

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def make_id(source: str, member_path: str) -> str:
    """Stable id from the source name and the file's path inside its archive."""
    member = member_path.replace("\\", "/").lstrip("./")
    return f"{source.replace('-', '_')}/{member}"


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

    def __post_init__(self):
        if not self.id or ".." in self.id.split("/"):
            raise InvalidValueError(f"bad id {self.id!r}")
        if os.path.isabs(self.path):
            raise InvalidValueError(f"path must be relative to the data home, got {self.path!r}")
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
        if not _SHA_RE.match(self.sha256):
            raise InvalidValueError(f"{self.id}: sha256 must be 64 lowercase hex digits")


@dataclass(frozen=True)
class Reject:
    path: str
    reason: str


def _metadata(extra: dict[bytes, bytes] | None) -> dict[bytes, bytes]:
    meta = {META_VERSION: SCHEMA_VERSION.encode()}
    meta.update(extra or {})
    return meta


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
    if version != SCHEMA_VERSION:
        raise InvalidValueError(
            f"{path} has schema version {version}, this imagenet-hard reads {SCHEMA_VERSION}; rebuild it"
        )
    return table


def table_label_spaces(table: pa.Table) -> dict[str, list[int]]:
    """Label spaces recorded by a builder (e.g. ``objectnet_113``), from parquet metadata."""
    raw = (table.schema.metadata or {}).get(META_LABEL_SPACES)
    return json.loads(raw) if raw else {}
