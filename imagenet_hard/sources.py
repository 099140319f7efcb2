"""Source tables: the builder interface, the source registry and ``build_source``.

A builder (one module per source under ``builders/``, installed as ``imagenet_hard.builders``)
says where a source comes from and how its files map to ImageNet-1k labels. This module owns the
part every source shares: checking and decoding each image, the rows (``records.SourceRow``), the rejects
table, and writing both atomically. Adding a source touches nothing downstream.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pkgutil
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from . import catalog
from . import home as homes
from .download import (
    MARKER,
    download,
    extract,
    filename_from_url,
    is_extracted,
    say,
    size_caps,
    verify_file,
)
from .errors import ImHardError, InvalidValueError, MissingFileError, UnsafeArchiveError
from .files import check_sha256
from .labels import english_labels, validate_label
from .pixels import ImageBombError, open_image, to_rgb
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
    """One file a builder found: its path inside the source, where it is on disk, its labels
    (``label_paper``: the authors' own label where it differs, see ``imagenet_hard.label_rules``)."""

    member: str
    file: Path
    label: tuple[int, ...]
    label_paper: tuple[int, ...] | None = None


@dataclass
class BuildContext:
    home: Path
    url: str | None = None
    sha256: str | None = None
    path: Path | None = None
    force: bool = False
    progress: bool = True
    notify: Callable[[str], None] = field(default=say, repr=False)
    #: ``--max-size``: how big a download or an extraction may get (None: the source's own cap).
    max_size: str | int | None = None
    #: The resolved source folder (set by ``SourceBuilder.fetch``): walks never leave it.
    root: Path | None = None

    @property
    def downloads(self) -> Path:
        return self.home / "downloads"

    def inside(self, path: Path) -> Path:
        """``path`` when, links resolved, it lies inside the source folder; else an error (for
        the folders a builder lists or reads itself, beside ``walk_files``)."""
        if self.root is not None and not _within(os.path.realpath(path), str(self.root)):
            raise UnsafeArchiveError(f"{path} is a link that leads outside the source folder "
                                     f"{self.root}; nothing was read there. If you trust it, "
                                     "pass the folder it points to as --path")
        return path

    def relpath(self, file: Path) -> str:
        """``file`` relative to the data home, without resolving symlinks (a --path folder is
        linked into the home, and rows must point through that link)."""
        return _relative_to_home(file, self.home)


class SourceBuilder:
    """Base class for one source. Subclasses set the class attributes and ``items``."""

    name: str = ""
    origin: str = ""
    label_space: str = "in1k"
    protocol: str = "in1k"           # how `imhard score --suite` scores it (score.protocols)
    description: str = ""
    licence: str = ""
    citation: str = ""
    homepage: str = ""
    expected: str = ""               # human-readable expected size, e.g. "7,500 images, 0.7 GB"
    #: About how many bytes the archive holds expanded (photos barely compress: its download
    #: too); twice this caps a download without a Content-Length and the extraction.
    known_bytes: int | None = None
    default_url: str | None = None
    default_sha256: str | None = None
    default_md5: str | None = None   # some datasets publish only MD5; checked on default_url only
    archive_name: str | None = None  # file name under <home>/downloads (default: from the URL)
    password: str | None = None      # for a password zip (published with the dataset)
    #: Licence rules, applied to every image of the source that review shows or publish writes
    #: (by ``imagenet_hard.imaging``): a 1-pixel red border on images shown on the web.
    web_border: bool = False
    derived: bool = False            # made from built tables (imagenet-c): see build_derived
    made_from: str = ""              # for a derived source: what it is made from
    shipped_with: str = ""           # for files that installed packages ship: which packages

    def where(self) -> str:
        """Where the images come from, as `imhard sources` prints it."""
        return (self.made_from or self.default_url or self.shipped_with
                or "--path only (no public download)")

    def tables(self, home) -> list[tuple[str, int, str]]:
        """This source's tables built in ``home``: (name, rows, how it was made)."""
        table = catalog.parse(self.name).path(home)
        return [(self.name, pq.read_metadata(table).num_rows, "")] if table.exists() else []

    def build_tables(self, home, force: bool = False, progress: bool = False,
                     **options) -> list[BuildResult]:
        """A derived source builds its tables from others' (``options`` are its own)."""
        raise NotImplementedError

    def extract_dir(self, ctx: BuildContext) -> Path:
        """Where this source's image files live under the data home."""
        return ctx.home / "sources" / catalog.file_stem(self.name)

    def files_dir(self, ctx: BuildContext) -> Path:
        """The extracted archive, or a link to the user's --path folder."""
        return self.extract_dir(ctx) / "files"

    def missing_message(self) -> str:
        """What to say when there is neither --path nor a download address."""
        return (f"source {self.name} has no public download address; pass --path with its "
                f"archive or folder, or --url with a mirror")

    def fetch(self, ctx: BuildContext) -> Path:
        """The folder holding this source's files (--path folder, --path archive or download);
        its resolved path becomes ``ctx.root``, the boundary of every walk."""
        folder = self._fetch(ctx)
        ctx.root = Path(os.path.realpath(folder))
        return folder

    def _fetch(self, ctx: BuildContext) -> Path:
        target = self.files_dir(ctx)
        if ctx.path is not None and ctx.path.is_dir():
            return _link_folder(ctx.path, target)
        caps = size_caps(self.known_bytes, ctx.max_size)
        if ctx.path is not None:
            if ctx.sha256:
                verify_file(ctx.path, ctx.sha256)
            return extract(ctx.path, target, self.password, progress=ctx.progress,
                           notify=ctx.notify, caps=caps)
        url = ctx.url or self.default_url
        if not url:
            raise MissingFileError(self.missing_message())
        default = ctx.url is None  # published checksums belong to the default address only
        name = (self.archive_name if default and self.archive_name else filename_from_url(url))
        archive = ctx.downloads / name
        if is_extracted(target, archive):
            return target
        archive = download(url, archive, ctx.sha256 or (self.default_sha256 if default else None),
                           md5=self.default_md5 if default and not ctx.sha256 else None,
                           progress=ctx.progress, notify=ctx.notify, caps=caps)
        return extract(archive, target, self.password, progress=ctx.progress, notify=ctx.notify,
                       caps=caps)

    def items(self, ctx: BuildContext) -> Iterable[Item | Reject]:
        """Fetch (or locate) the source and yield its images with labels, or rejects."""
        raise NotImplementedError

    def label_spaces(self, ctx: BuildContext) -> dict[str, list[int]]:
        """Label spaces this source defines beyond the fixed ones (ObjectNet's 113 classes)."""
        return {}


#: Files that operating systems leave in archives and folders; never images, never rejects.
_JUNK_PREFIXES = (".", "__MACOSX", "Thumbs.db", "desktop.ini")
_DOC_PREFIXES = ("readme", "license", "licence")


def is_junk(name: str) -> bool:
    return name.startswith(_JUNK_PREFIXES) or name == MARKER


class ClassFolderSource(SourceBuilder):
    """A source laid out as ``<top>/<wnid>/<image>`` (ImageNet-A, -R, -Sketch).

    Subclasses set ``top`` and ``classes``. The user's --path may be the archive, the folder
    holding ``<top>/`` or ``<top>/`` itself; ids always read ``<top>/<wnid>/<file>``.
    """

    top: str = ""
    class_description: str = "ImageNet-1k wnids"

    def classes(self) -> dict[str, tuple[int, ...]]:
        """Folder name → ImageNet-1k label for every class folder the source may hold."""
        raise NotImplementedError

    def find_top(self, root: Path, classes: dict) -> Path:
        if (root / self.top).is_dir():
            return root / self.top
        if any(p.name in classes for p in root.iterdir() if p.is_dir()):
            return root  # the user pointed --path at <top>/ itself
        raise MissingFileError(
            f"{root} holds neither {self.top}/ nor class folders named by wnid; expected the "
            f"layout {self.top}/<wnid>/<image>"
        )

    def items(self, ctx: BuildContext) -> Iterable[Item | Reject]:
        classes = self.classes()
        top = ctx.inside(self.find_top(self.fetch(ctx), classes))
        for entry in sorted(top.iterdir()):
            if is_junk(entry.name):
                continue
            if not entry.is_dir():
                if not entry.name.lower().startswith(_DOC_PREFIXES):
                    yield Reject(ctx.relpath(entry), "not inside a class folder")
                continue
            label = classes.get(entry.name)
            for file in walk_files(entry, ctx):
                if isinstance(file, Reject):
                    yield file
                elif label is None:
                    yield Reject(ctx.relpath(file), f"unknown class folder {entry.name!r}: not "
                                 f"one of the {len(classes)} {self.class_description}")
                else:
                    yield Item(f"{self.top}/{file.relative_to(top).as_posix()}", file, label)


def walk_files(folder: Path, ctx: BuildContext,
               skip: Callable[[str], bool] = is_junk) -> Iterator[Path | Reject]:
    """Files under ``folder`` in a stable order, without OS junk (``skip``), never leaving the
    source folder ``ctx.root``.

    A link is followed only when its resolved target lies inside the source folder; a link that
    leads out (whether it names a file or a folder, directly or through a chain of links) is a
    Reject and nothing behind it is read. FIFOs, sockets and devices are Rejects too (reading a
    FIFO would hang), and each real folder is walked once, so a link loop ends.
    """
    root = str(ctx.root or os.path.realpath(folder))
    yield from _walk(Path(folder), root, ctx, skip, set())


def _walk(folder: Path, root: str, ctx: BuildContext, skip: Callable[[str], bool],
          seen: set[str]) -> Iterator[Path | Reject]:
    real = os.path.realpath(folder)
    if not _within(real, root):
        yield Reject(ctx.relpath(folder), _OUTSIDE)
        return
    if real in seen:
        return
    seen.add(real)
    with os.scandir(folder) as it:
        entries = sorted((e for e in it if not skip(e.name)), key=lambda e: e.name)
    folders = []
    for e in entries:
        path = folder / e.name
        if e.is_symlink() and not _within(os.path.realpath(path), root):
            yield Reject(ctx.relpath(path), _OUTSIDE)
        elif e.is_dir():
            folders.append(path)
        elif e.is_file():
            yield path
        else:
            yield Reject(ctx.relpath(path), "not a regular file (a FIFO, socket, device or "
                         "broken link)")
    for sub in folders:
        yield from _walk(sub, root, ctx, skip, seen)


_OUTSIDE = "a link that leads outside the source folder; not followed"


def _within(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


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


def _relative_to_home(file: Path, home: Path) -> str:
    file = Path(file)
    if not file.is_absolute():
        return file.as_posix()
    try:  # abspath, not resolve(): a link to the user's --path folder must stay a link
        return Path(os.path.abspath(file)).relative_to(home).as_posix()
    except ValueError:
        raise InvalidValueError(f"{file} is not inside the data home {home}; builders must "
                                "place or link files under <home>/sources") from None


def _link_folder(folder: Path, link: Path) -> Path:
    """Point ``link`` at the user's folder instead of copying gigabytes into the data home."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        if Path(os.readlink(link)) == folder:
            return link
        link.unlink()
    elif link.exists():
        if not (link / MARKER).is_file():
            raise ImHardError(f"{link} exists and is not made by imhard; move it away and rerun")
        shutil.rmtree(link)  # an earlier extraction, now replaced by the user's folder
    tmp = link.with_name(f".{link.name}.link")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(folder, target_is_directory=True)
    os.replace(tmp, link)
    return link


def _check_image(item: Item, source: SourceBuilder, home: Path) -> SourceRow | Reject:
    rel = _relative_to_home(item.file, home)
    try:
        data = item.file.read_bytes()
    except OSError as exc:
        return Reject(rel, f"unreadable: {exc.strerror or exc}")
    if not data:
        return Reject(rel, "empty file (0 bytes)")
    try:   # width and height under the one image rule (stored pixel order), as mining sees them
        im = open_image(data, max_pixels=MAX_PIXELS)
        w, h = im.size
        to_rgb(im)  # greyscale, CMYK, palette, alpha: must convert, not fail
    except ImageBombError as exc:
        return Reject(rel, f"decompression bomb: {exc.reason}")
    except (OSError, ValueError) as exc:   # ImageError (a ValueError), or PIL converting
        return Reject(rel, f"not a decodable image: {getattr(exc, 'reason', exc)}")
    label = validate_label(item.label)
    return SourceRow(
        id=make_id(source.name, item.member),
        origin=source.origin,
        path=rel,
        label=label,
        english_label=english_labels(label),
        label_space=source.label_space,
        width=w,
        height=h,
        sha256=hashlib.sha256(data).hexdigest(),
        label_paper=list(item.label_paper) if item.label_paper is not None else None,
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
          path=None, force: bool = False, progress: bool = False,
          max_size: str | int | None = None) -> BuildResult:
    """Build one source table; see :func:`build_source` for the short form. ``max_size`` caps
    the download and the extraction (see :func:`imagenet_hard.download.size_caps`)."""
    if sha256 is not None:
        sha256 = check_sha256(sha256, "--sha256")  # before anything is fetched or written
    size_caps(None, max_size)  # a bad --max-size is refused before anything is fetched
    source = get_source(name)
    if source.derived:
        raise InvalidValueError(f"source {source.name} is made from built tables, not "
                                f"downloaded: call build_derived({source.name!r}, ...) or run "
                                f"`imhard build --source {source.name}` with its options")
    home_dir = homes.data_home(home)
    table = catalog.parse(source.name).path(home_dir)
    rejects_path = catalog.parse(source.name).rejects_path(home_dir)
    if table.exists() and not force:
        n = pq.read_metadata(table).num_rows
        n_rej = pq.read_metadata(rejects_path).num_rows if rejects_path.exists() else 0
        return BuildResult(source.name, table, rejects_path, n, n_rej, skipped=True)
    if path is not None:
        path = Path(path).expanduser().resolve()
        if not path.exists():
            raise MissingFileError(f"--path {path} does not exist")
    ctx = BuildContext(home=home_dir, url=url, sha256=sha256, path=path, force=force,
                       progress=progress, max_size=max_size)
    rows, rejects = index_items(source, source.items(ctx), home_dir, progress=progress)
    if not rows:
        raise ImHardError(
            f"source {source.name}: no usable images found ({len(rejects)} rejected); "
            f"see {rejects_path}" if rejects else f"source {source.name}: no images found"
        )
    write_table(sorted(rejects, key=lambda r: r.path), REJECT_SCHEMA, rejects_path)
    write_source_table(rows, table, catalog.file_stem(source.name), source.label_spaces(ctx))
    return BuildResult(source.name, table, rejects_path, len(rows), len(rejects), skipped=False)


def build_source(name: str, home=None, url: str | None = None, sha256: str | None = None,
                 path=None, force: bool = False, progress: bool = False,
                 max_size: str | int | None = None) -> Path:
    """Build ``name`` into ``<home>/sources/<name>.parquet`` and return that path."""
    return build(name, home, url=url, sha256=sha256, path=path, force=force,
                 progress=progress, max_size=max_size).table


def build_derived(name: str, home=None, force: bool = False, progress: bool = False,
                  **options) -> list[BuildResult]:
    """Build a source made from other built tables (``imagenet-c``): one result per table."""
    source = get_source(name)
    if not source.derived:
        raise InvalidValueError(f"source {source.name} is not made from other tables; use build()")
    return source.build_tables(homes.data_home(home), force=force, progress=progress, **options)


def source_status(home=None) -> Iterator[tuple[SourceBuilder, int | None]]:
    """Every known source with its row count when built locally (None when not built); a
    derived source counts the rows of all its tables."""
    for name in list_sources():
        src = get_source(name)
        tables = src.tables(homes.data_home(home))
        yield src, (sum(t[1] for t in tables) if tables else None)


__all__ = [
    "BuildContext", "BuildResult", "ClassFolderSource", "Item", "MAX_PIXELS", "SourceBuilder",
    "build", "build_derived", "build_source", "is_junk", "walk_files",
    "get_source", "list_sources", "normalize_name", "register_source", "source_status",
]
