"""What a mining run works on: the images of its sources, their label spaces, its shards, and the
``run.json`` that pins its settings so a rerun resumes only the same work.

Images from all sources are sorted by id and cut into shards of ``shard_size``; shard ``k`` holds
sorted images ``k*shard_size … (k+1)*shard_size - 1``, so the assignment depends only on the ids.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import home as homes
from ..errors import InvalidValueError, MissingFileError
from ..files import write_json_atomic
from ..labels import NUM_CLASSES, label_space_indices
from ..records import META_SOURCE, read_table, table_label_spaces
from . import order

RUN_FORMAT = "1"
#: Settings a resumed run must share with the run it continues.
PINNED = ("judge", "sources", "exhaustive", "shard_size", "crop_order", "images", "ids_sha256")


@dataclass(frozen=True)
class ImageRow:
    """One image to judge: the source-table fields mining reads."""

    id: str
    source: str
    origin: str
    path: str
    label: tuple[int, ...]
    label_space: str


@dataclass(frozen=True)
class Workload:
    """Every image of a run's sources, sorted by id, and the label spaces they use."""

    sources: tuple[str, ...]
    images: tuple[ImageRow, ...]
    spaces: dict[str, tuple[int, ...]] = field(default_factory=dict)
    home: Path = Path(".")  # the data home image paths are relative to

    def shards(self, shard_size: int) -> list[tuple[ImageRow, ...]]:
        return [self.images[i:i + shard_size] for i in range(0, len(self.images), shard_size)]

    def ids_sha256(self) -> str:
        h = hashlib.sha256()
        for row in self.images:
            h.update(row.id.encode("utf-8") + b"\n")
        return h.hexdigest()


def source_file_name(name: str) -> str:
    return name.strip().replace("-", "_")


def built_sources(home=None) -> list[str]:
    folder = homes.sources_dir(home)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.parquet") if not p.stem.endswith(".rejects"))


def _read_source(name: str, home) -> tuple[list[ImageRow], dict[str, list[int]]]:
    path = homes.source_table_path(name, home)
    if not path.exists():
        built = ", ".join(built_sources(home)) or "none"
        raise MissingFileError(
            f"source {name!r} is not built ({path} does not exist); run `imhard build --source "
            f"{name}` first (built here: {built})"
        )
    table = read_table(path, what=f"source table {name!r}")
    meta_name = (table.schema.metadata or {}).get(META_SOURCE)
    source = meta_name.decode() if meta_name else path.stem
    cols = table.select(["id", "origin", "path", "label", "label_space"]).to_pydict()
    rows = [
        ImageRow(id=i, source=source, origin=o, path=p, label=tuple(int(x) for x in lab),
                 label_space=sp)
        for i, o, p, lab, sp in zip(cols["id"], cols["origin"], cols["path"], cols["label"],
                                    cols["label_space"], strict=True)
    ]
    return rows, table_label_spaces(table)


def load_workload(sources: list[str], home=None) -> Workload:
    """Read the source tables, check ids are unique across them, resolve every label space."""
    names = [source_file_name(s) for s in sources]
    if not names:
        raise InvalidValueError("mining needs at least one --source")
    if len(set(names)) != len(names):
        raise InvalidValueError(f"a source is listed twice: {', '.join(sources)}")
    images: list[ImageRow] = []
    extra: dict[str, list[int]] = {}
    for name in names:
        rows, spaces = _read_source(name, home)
        for space, idx in spaces.items():
            if space in extra and sorted(extra[space]) != sorted(idx):
                raise InvalidValueError(
                    f"sources define label space {space!r} differently; mine them in separate runs"
                )
            extra[space] = idx
        images.extend(rows)
    images.sort(key=lambda r: r.id)
    dupes = [a.id for a, b in zip(images, images[1:], strict=False) if a.id == b.id]
    if dupes:
        raise InvalidValueError(f"{len(dupes)} ids occur in more than one source, e.g. {dupes[0]!r}")
    used = sorted({r.label_space for r in images})
    spaces = {s: label_space_indices(s, extra) for s in used}
    for s, idx in spaces.items():
        if not idx or not all(0 <= i < NUM_CLASSES for i in idx):
            raise InvalidValueError(f"label space {s!r} must hold class indices 0..999")
    return Workload(tuple(names), tuple(images), spaces, homes.data_home(home))


def default_run_name(judge_name: str, sources: list[str], exhaustive: bool) -> str:
    """``<judge>__<source>+<source>[__exhaustive]`` with anything unsafe in a file name as ``-``."""
    judge = re.sub(r"[^A-Za-z0-9._-]+", "-", judge_name).strip("-") or "judge"
    srcs = "+".join(source_file_name(s) for s in sources)
    return f"{judge}__{srcs}" + ("__exhaustive" if exhaustive else "")


def check_run_name(run: str) -> str:
    if not run or run in (".", "..") or "/" in run or "\\" in run:
        raise InvalidValueError(f"--run {run!r} must be a plain folder name (no slashes)")
    return run


def run_record(judge_name: str, work: Workload, exhaustive: bool, shard_size: int,
               crop_order: order.CropOrder | None = None) -> dict:
    """``crop_order`` defaults to the heuristic; a learned one is recorded in full with its origin."""
    return {
        "format": RUN_FORMAT,
        "judge": judge_name,
        "sources": list(work.sources),
        "exhaustive": bool(exhaustive),
        "shard_size": int(shard_size),
        "crop_order": (crop_order or order.heuristic_order()).describe(),
        "images": len(work.images),
        "shards": -(-len(work.images) // shard_size),
        "ids_sha256": work.ids_sha256(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def check_run(run_dir: Path, record: dict) -> bool:
    """Whether the run exists; raise if it was started with other pinned settings."""
    path = run_dir / "run.json"
    if not path.exists():
        return False
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidValueError(f"{path} is unreadable ({exc}); delete the folder {run_dir} to "
                                "start the run again") from exc
    diffs = [f"{k}: run has {old.get(k)!r}, asked {record[k]!r}"
             for k in PINNED if old.get(k) != record[k]]
    if diffs:
        raise InvalidValueError(
            f"run {run_dir.name!r} was started with other settings ({'; '.join(diffs)}); pass "
            f"another --run name, or delete {run_dir} to start it again"
        )
    return True


def open_run(run_dir: Path, record: dict) -> None:
    """Write ``run.json`` for a new run (after :func:`check_run` passed)."""
    if not check_run(run_dir, record):
        write_json_atomic(run_dir / "run.json", record)


def shard_path(run_dir: Path, k: int) -> Path:
    return run_dir / "shards" / f"shard-{k:05d}.parquet"
