"""Source tables: the builder interface, the source registry and ``build_source``.

A builder (one module per source under ``builders/``, installed as ``imagenet_hard.builders``)
says where a source comes from and how its files map to ImageNet-1k labels. This module owns the
part every source shares: checking and decoding each image, the rows of DESIGN §3, the rejects
table, and writing both atomically. Adding a source touches nothing downstream.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from . import home as homes
from .errors import ImHardError, MissingFileError
from .labels import english_labels, validate_label
from .records import (
    REJECT_SCHEMA,
    Reject,
    SourceRow,
    make_id,
    write_source_table,
    write_table,
)
from .registry import Registry, normalize_name

#: Images with more pixels than this are rejected as decompression bombs (≈ 11,585²; the largest
#: photos in the supported sources are under 20 MP).
MAX_PIXELS = 134_217_728


@dataclass(frozen=True)
class Item:
    """One file a builder found: its path inside the source, where it is on disk, its labels."""

    member: str
    file: Path
    label: tuple[int, ...]


@dataclass
class BuildContext:
    home: Path
    url: str | None = None
    sha256: str | None = None
    path: Path | None = None
    force: bool = False
    progress: bool = True

    @property
    def downloads(self) -> Path:
        return self.home / "downloads"


class SourceBuilder:
    """Base class for one source. Subclasses set the class attributes and ``items``."""

    name: str = ""
    origin: str = ""
    label_space: str = "in1k"
    description: str = ""
    licence: str = ""
    citation: str = ""
    homepage: str = ""
    expected: str = ""               # human-readable expected size, e.g. "7,500 images, 0.7 GB"
    default_url: str | None = None
    default_sha256: str | None = None

    def extract_dir(self, ctx: BuildContext) -> Path:
        """Where this source's image files live under the data home."""
        return ctx.home / "sources" / self.name.replace("-", "_")

    def items(self, ctx: BuildContext) -> Iterable[Item | Reject]:
        """Fetch (or locate) the source and yield its images with labels, or rejects."""
        raise NotImplementedError

    def label_spaces(self, ctx: BuildContext) -> dict[str, list[int]]:
        """Label spaces this source defines beyond the fixed ones (ObjectNet's 113 classes)."""
        return {}


def _register_builtins() -> None:
    from . import builders

    for info in pkgutil.iter_modules(builders.__path__):
        importlib.import_module(f"{builders.__name__}.{info.name}")


SOURCES: Registry[type[SourceBuilder]] = Registry(
    "source", entry_point_group="imagenet_hard.sources", builtins=_register_builtins
)


def register_source(cls: type[SourceBuilder]) -> type[SourceBuilder]:
    """Class decorator: make a builder available to ``imhard build --source``."""
    return SOURCES.register(cls.name)(cls)


def list_sources(pattern: str = "*") -> list[str]:
    return SOURCES.names(pattern)


def get_source(name: str) -> SourceBuilder:
    return SOURCES.get(name)()


def _check_image(item: Item, source: SourceBuilder, home: Path) -> SourceRow | Reject:
    rel = item.file.resolve().relative_to(home) if item.file.is_absolute() else item.file
    try:
        data = item.file.read_bytes()
    except OSError as exc:
        return Reject(str(rel), f"unreadable: {exc.strerror or exc}")
    if not data:
        return Reject(str(rel), "empty file (0 bytes)")
    try:
        with Image.open(item.file) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                return Reject(str(rel), f"decompression bomb: {w}x{h} exceeds {MAX_PIXELS} pixels")
            im.load()  # a truncated file fails only when fully decoded
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return Reject(str(rel), f"not a decodable image: {exc}")
    label = validate_label(item.label)
    return SourceRow(
        id=make_id(source.name, item.member),
        origin=source.origin,
        path=str(rel),
        label=label,
        english_label=english_labels(label),
        label_space=source.label_space,
        width=w,
        height=h,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def index_items(source: SourceBuilder, items: Iterable[Item | Reject], home: Path,
                progress: bool = False) -> tuple[list[SourceRow], list[Reject]]:
    """Decode and hash every item (in threads: PIL releases the GIL while decoding)."""
    from tqdm import tqdm

    rows: list[SourceRow] = []
    rejects: list[Reject] = []
    todo: list[Item] = []
    for it in items:
        (rejects.append(it) if isinstance(it, Reject) else todo.append(it))
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = pool.map(lambda it: _check_image(it, source, home), todo)
        for res in tqdm(results, total=len(todo), desc=f"indexing {source.name}",
                        unit="img", disable=not progress):
            (rows if isinstance(res, SourceRow) else rejects).append(res)
    return rows, rejects


@dataclass(frozen=True)
class BuildResult:
    name: str
    table: Path
    rejects: Path
    kept: int
    rejected: int
    skipped: bool  # True when the table already existed and nothing was done


def build(name: str, home=None, url: str | None = None, sha256: str | None = None,
          path=None, force: bool = False, progress: bool = False) -> BuildResult:
    """Build one source table; see :func:`build_source` for the short form."""
    source = get_source(name)
    home_dir = homes.data_home(home)
    table = homes.source_table_path(source.name, home_dir)
    rejects_path = homes.rejects_table_path(source.name, home_dir)
    if table.exists() and not force:
        n = pq.read_metadata(table).num_rows
        n_rej = pq.read_metadata(rejects_path).num_rows if rejects_path.exists() else 0
        return BuildResult(source.name, table, rejects_path, n, n_rej, skipped=True)
    if path is not None:
        path = Path(path).expanduser().resolve()
        if not path.exists():
            raise MissingFileError(f"--path {path} does not exist")
    ctx = BuildContext(home=home_dir, url=url, sha256=sha256, path=path, force=force,
                       progress=progress)
    rows, rejects = index_items(source, source.items(ctx), home_dir, progress=progress)
    if not rows:
        raise ImHardError(
            f"source {source.name}: no usable images found ({len(rejects)} rejected); "
            f"see {rejects_path}" if rejects else f"source {source.name}: no images found"
        )
    write_table(sorted(rejects, key=lambda r: r.path), REJECT_SCHEMA, rejects_path)
    write_source_table(rows, table, source.name.replace("-", "_"), source.label_spaces(ctx))
    return BuildResult(source.name, table, rejects_path, len(rows), len(rejects), skipped=False)


def build_source(name: str, home=None, url: str | None = None, sha256: str | None = None,
                 path=None, force: bool = False, progress: bool = False) -> Path:
    """Build ``name`` into ``<home>/sources/<name>.parquet`` and return that path."""
    return build(name, home, url=url, sha256=sha256, path=path, force=force,
                 progress=progress).table


def source_status(home=None) -> Iterator[tuple[SourceBuilder, int | None]]:
    """Every known source with its row count when built locally (None when not built)."""
    for name in list_sources():
        src = get_source(name)
        table = homes.source_table_path(src.name, home)
        yield src, (pq.read_metadata(table).num_rows if table.exists() else None)


__all__ = [
    "BuildContext", "BuildResult", "Item", "MAX_PIXELS", "SourceBuilder", "build", "build_source",
    "get_source", "list_sources", "normalize_name", "register_source", "source_status",
]
