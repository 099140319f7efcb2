"""``publish``: a mining run plus review decisions → a complete dataset folder.

The folder (``data/validation-NNNNN-of-MMMMM.parquet``, ``README.md``, ``origins.png``,
``fingerprint.txt``) is written under a temporary name beside the destination and renamed into
place only when complete, so a crash never leaves a half-written release where a release was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import home as homes
from ..errors import InvalidValueError
from ..fingerprint import fingerprint
from . import card
from .selection import Selection, select
from .shards import (
    DATA_DIR,
    DEFAULT_MAX_SHARD_SIZE,
    SHARD_RE,
    encode_all,
    parse_shard_size,
    write_shards,
)

FINGERPRINT_FILE = "fingerprint.txt"
README = "README.md"
DEFAULT_NAME = "imagenet-hard"
#: What a published folder may hold; anything else means ``--out`` points at someone's files.
_OWN_ENTRIES = {README, DATA_DIR, card.CHART_NAME, FINGERPRINT_FILE, ".gitattributes"}


@dataclass(frozen=True)
class PublishResult:
    out: Path
    shards: list[Path]
    rows: int
    by_origin: dict[str, int]
    fingerprint: str
    selection: Selection


def default_out(home=None) -> Path:
    """``<home>/dist/imagenet-hard``: the folder name ``load_dataset("imagenet-hard")`` finds."""
    return homes.dist_dir(home) / DEFAULT_NAME


def _check_replaceable(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InvalidValueError(f"--out {out} is a file; give a folder")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in _OWN_ENTRIES)
    data = out / DATA_DIR
    if data.is_dir():
        foreign += sorted(f"{DATA_DIR}/{p.name}" for p in data.iterdir() if not SHARD_RE.match(p.name))
    if foreign:
        raise InvalidValueError(
            f"--out {out} holds files a published folder does not ({', '.join(foreign[:5])}); "
            "publishing replaces the whole folder, so choose an empty or new one")


def _replace(tmp: Path, out: Path) -> None:
    """Put the finished folder in place; the old release is removed only after the swap."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old)


def _stats(shards: list[Path], origins: list[str]) -> card.Stats:
    metas = [pq.read_metadata(p) for p in shards]
    return card.Stats(
        num_rows=sum(m.num_rows for m in metas),
        num_shards=len(shards),
        num_bytes=sum(m.row_group(i).total_byte_size for m in metas for i in range(m.num_row_groups)),
        download_size=sum(p.stat().st_size for p in shards),
        by_origin=dict(sorted(Counter(origins).items())),
    )


def publish(run: str | os.PathLike, decisions: pa.Table | None = None,
            out: str | os.PathLike | None = None, *, include_pending: bool = False,
            max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE, home=None,
            template: str | os.PathLike | None = None) -> PublishResult:
    """Publish the candidates of ``run`` that review kept (and, with ``include_pending``, the
    undecided ones) into ``out`` (default ``<home>/dist/imagenet-hard``).

    ``decisions`` holds the current review verdicts (records.DECISION_SCHEMA, one row per id),
    as ``imagenet_hard.review.current_decisions()`` returns them; ``None`` means none yet.
    """
    max_bytes = parse_shard_size(max_shard_size)
    sel = select(run, decisions, include_pending=include_pending, home=home)
    out = Path(out).expanduser().resolve() if out else default_out(home)
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        tmp.chmod(0o755)
        shards, prints = write_shards(encode_all(sel.rows), tmp / DATA_DIR, max_bytes)
        fp = fingerprint(prints)
        stats = _stats(shards, [r.origin for r in sel.rows])
        (tmp / README).write_text(card.render(sel, stats, fp, template), encoding="utf-8")
        (tmp / card.CHART_NAME).write_bytes(card.origin_chart(stats.by_origin))
        (tmp / FINGERPRINT_FILE).write_text(fp + "\n", encoding="ascii")
        _replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return PublishResult(out=out, shards=[out / DATA_DIR / p.name for p in shards],
                         rows=stats.num_rows, by_origin=stats.by_origin, fingerprint=fp,
                         selection=sel)
