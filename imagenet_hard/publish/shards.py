"""The published parquet shards: the Hugging Face features, the image bytes, byte-sized shards.

Images keep their original bytes, unless their source's licence rules say otherwise (ObjectNet's
1-pixel red border): :func:`imagenet_hard.imaging.publish_image` then re-encodes them losslessly as
PNG with the rule applied. Writer options are fixed and nothing time-dependent is written, so
equal inputs give equal bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ChecksumError, MissingFileError
from ..files import sha256_bytes
from ..imaging import publish_image
from ..sizes import parse_size
from .selection import PublishRow

SPLIT = "validation"
DATA_DIR = "data"
SHARD_RE = re.compile(rf"^{SPLIT}-(\d{{5}})-of-(\d{{5}})\.parquet$")
DEFAULT_MAX_SHARD_SIZE = 500 * 10**6
ROW_GROUP_ROWS = 100               # what `datasets` uses for image data; keeps the Hub viewer happy
ROW_GROUP_BYTES = 64 * 2**20
WRITER_OPTIONS = dict(compression="zstd", compression_level=3, version="2.6",
                      use_dictionary=["origin"], write_statistics=["origin", "id"])

def features():
    """The dataset's features, as ``taesiri/imagenet-hard`` has them, plus ``id``."""
    from datasets import Features, Image, List, Value

    return Features({
        "image": Image(),
        "label": List(Value("int64")),
        "origin": Value("string"),
        "english_label": List(Value("string")),
        "id": Value("string"),
    })


def arrow_schema() -> pa.Schema:
    """The parquet schema, with the features in the ``huggingface`` metadata as datasets writes it."""
    return features().arrow_schema


def parse_shard_size(text: str | int) -> int:
    """``--max-shard-size`` as bytes, in the one size syntax (:mod:`imagenet_hard.sizes`):
    ``500MB`` → 500,000,000 (decimal, as huggingface_hub reads it), ``1GiB`` or ``1G`` → 2**30, a
    bare number is bytes."""
    return parse_size(text, option="--max-shard-size", examples="500MB, 1GB or 256MiB")


@dataclass(frozen=True)
class EncodedRow:
    row: PublishRow
    data: bytes
    name: str          # the image's ``path`` field: the id, with .png when re-encoded
    sha256: str        # of ``data``, the bytes as stored (what the fingerprint covers)


def encode(row: PublishRow) -> EncodedRow:
    """Read a row's original bytes, check them against the source table, apply its licence rules."""
    try:
        data = row.file.read_bytes()
    except FileNotFoundError:
        raise MissingFileError(
            f"{row.id}: image file {row.file} is gone; rebuild its source with "
            f"`imhard build --source {row.source} --force`") from None
    if sha256_bytes(data) != row.sha256:
        raise ChecksumError(
            f"{row.id}: {row.file} changed since its source table was built (SHA-256 differs); "
            f"rebuild the source with `imhard build --source {row.source} --force` and mine again")
    name = row.id
    data, reencoded = publish_image(data, row.rules)
    if reencoded:
        name = str(PurePosixPath(name).with_suffix(".png"))
    return EncodedRow(row, data, name, sha256_bytes(data))


def encode_all(rows: list[PublishRow], workers: int = 4, chunk: int = 32) -> Iterator[EncodedRow]:
    """Encoded rows in input order; PNG encoding releases the GIL, so threads overlap the slow ones."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(rows), chunk):   # bounded: at most ``chunk`` images in memory
            yield from pool.map(encode, rows[start:start + chunk])


def _table(batch: list[EncodedRow], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pydict({
        "image": [{"bytes": e.data, "path": e.name} for e in batch],
        "label": [e.row.label for e in batch],
        "origin": [e.row.origin for e in batch],
        "english_label": [e.row.english_label for e in batch],
        "id": [e.row.id for e in batch],
    }, schema=schema)


class _ShardWriter:
    """Writes rows into numbered shards, starting a new one before ``max_bytes`` would be passed."""

    def __init__(self, data_dir: Path, max_bytes: int):
        self.data_dir, self.max_bytes = data_dir, max_bytes
        self.schema = arrow_schema()
        self.paths: list[Path] = []
        self.rows_per_shard: list[int] = []
        self._writer: pq.ParquetWriter | None = None
        self._shard_bytes = 0
        self._batch: list[EncodedRow] = []
        self._batch_bytes = 0

    def add(self, e: EncodedRow) -> None:
        size = len(e.data) + 256       # ~ labels, names and parquet overhead per row
        if self._writer is not None and self._shard_bytes + size > self.max_bytes:
            self._close_shard()
        if self._writer is None:
            path = self.data_dir / f".shard-{len(self.paths):05d}.parquet"
            self._writer = pq.ParquetWriter(path, self.schema, **WRITER_OPTIONS)
            self.paths.append(path)
            self.rows_per_shard.append(0)
        self._batch.append(e)
        self._batch_bytes += size
        self._shard_bytes += size
        self.rows_per_shard[-1] += 1
        if len(self._batch) >= ROW_GROUP_ROWS or self._batch_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._writer.write_table(_table(self._batch, self.schema), row_group_size=len(self._batch))
        self._batch, self._batch_bytes = [], 0

    def _close_shard(self) -> None:
        self._flush()
        self._writer.close()
        self._writer, self._shard_bytes = None, 0

    def finish(self) -> list[Path]:
        """Close the last shard and give every shard its final ``-NNNNN-of-MMMMM`` name."""
        if self._writer is not None:
            self._close_shard()
        n = len(self.paths)
        final = [self.data_dir / f"{SPLIT}-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
        for tmp, dest in zip(self.paths, final, strict=True):
            tmp.rename(dest)
        return final


def write_shards(encoded: Iterable[EncodedRow], data_dir: Path, max_bytes: int) -> tuple[list[Path], list[tuple[str, list[int], str]]]:
    """Write the shards; return their paths and the fingerprint rows (id, labels, image sha256)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    writer = _ShardWriter(data_dir, max_bytes)
    prints = []
    for e in encoded:
        writer.add(e)
        prints.append((e.row.id, e.row.label, e.sha256))
    return writer.finish(), prints
