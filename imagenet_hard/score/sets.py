"""The sets a submission is scored on: every built source table under its protocol (ImageNet-C:
one set per corruption and severity) and the published ImageNet-Hard (a folder or Hub repo with
the ``taesiri/imagenet-hard`` schema), of which a plain ``imhard score`` is a suite of one.
Per-row state is kept in Arrow arrays and data is read a row group at a time, so the parent's
memory stays flat as a set grows. The child never sees a labelled file, only the images folder
of :func:`table_images` / :func:`stored_images` (docs/scoring.md, "How it runs").
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import catalog
from .. import home as homes
from ..catalog import IMAGENET_HARD as IMAGENET_HARD_SET
from ..errors import InvalidValueError, MissingFileError
from ..files import atomic_path, sha256_file, write_json_atomic
from ..fingerprint import fingerprint
from ..models.weights import hub_cache
from ..records import META_SOURCE, read_table, table_label_spaces
from .protocols import IMAGENET_HARD, Protocol, corruption_of, protocol_for
from .result import SPLIT

REQUIRED_COLUMNS = ("image", "label", "origin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
ARROW, STAT = "images.arrow", "stat.json"
_EXT = re.compile(r"^\.[A-Za-z0-9]{1,6}$")
LABELS = pa.list_(pa.int64())
#: The order of the robustness tables in the seeds; other sources follow, ImageNet-C last.
SET_ORDER = ("imagenet", "imagenet-real", "imagenet-a", "imagenet-r", "imagenet-sketch",
             "imagenet-v2", "objectnet")


@dataclass
class Rows:
    """Rows of a set as the result checks read them: ``ids``, ``labels``, ``origins``."""

    ids: pa.Array
    labels: pa.Array          # list<int64>; null where the protocol leaves the row out
    origins: pa.Array

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, indices) -> Rows:
        idx = pa.array(np.asarray(indices, dtype=np.int64))
        return Rows(self.ids.take(idx), self.labels.take(idx), self.origins.take(idx))


def _column(values) -> pa.Array:
    col = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return col if isinstance(col, pa.Array) else pa.array(col, pa.string())


@dataclass
class ScoreSet:
    name: str                               # "imagenet-a", "imagenet-c/fog/3", "imagenet-hard"
    protocol: Protocol
    source: str                             # table path (relative to the home) or dataset id
    all: Rows                               # every row, in the order the child reads images
    fingerprint: str
    classes: tuple[int, ...] | None         # the top-5 is taken among these (None: all 1000)
    cache_key: str                          # names the prediction cache (with the submission)
    images: Callable[[], tuple[list[str], list[str]]] = field(repr=False)
    split: str = "table"
    label_files: tuple[str, ...] = ()       # where its labels are on disk (hidden from the child)

    def __len__(self) -> int:
        return len(self.all)

    @property
    def scored(self) -> np.ndarray:
        """Row indices the protocol scores."""
        return np.flatnonzero(self.all.labels.is_valid().to_numpy(zero_copy_only=False))

    def rows(self, indices=None) -> Rows:
        return self.all.take(self.scored if indices is None else indices)

    @property
    def corruption(self) -> tuple[str, int] | None:
        return corruption_of(self.all.origins[0].as_py()) if self.protocol.metric == "error" \
            else None


def set_fingerprint(protocol: Protocol, ids, labels, shas) -> str:
    inner = fingerprint(zip(ids, labels, shas, strict=True))
    return hashlib.sha256(f"{protocol.name}\n{inner}".encode()).hexdigest()


def table_set(name: str, path: Path, home=None) -> ScoreSet:
    """The set of one source table under its protocol."""
    home = homes.data_home(home)
    table = read_table(path, "source table")
    cols = {c: table.column(c).to_pylist() for c in
            ("id", "origin", "path", "label", "label_space", "sha256", "label_paper")}
    if not cols["id"]:
        raise MissingFileError(f"source table {path} has no rows; rebuild it")
    source = (table.schema.metadata or {}).get(META_SOURCE, b"").decode() or path.stem
    protocol = protocol_for(source, cols["label_space"][0], cols["origin"][0])
    recorded = table_label_spaces(table)
    rows = [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
    labels = [list(protocol.labels(r)) or None for r in rows]
    scored = [i for i, lab in enumerate(labels) if lab is not None]
    fp = set_fingerprint(protocol, [cols["id"][i] for i in scored], [labels[i] for i in scored],
                         [cols["sha256"][i] for i in scored])
    rel = path.relative_to(home).as_posix() if path.is_relative_to(home) else str(path)
    key = f"{images_key(cols['sha256'])[:16]}-{protocol.key(recorded)}"
    return ScoreSet(name=name, protocol=protocol, source=rel,
                    all=Rows(_column(cols["id"]), pa.array(labels, LABELS),
                             _column(cols["origin"])),
                    fingerprint=fp, classes=protocol.classes(recorded), cache_key=key,
                    images=lambda: table_images(cols["path"], cols["sha256"], rel, home),
                    label_files=(str(path),))


# -- the published ImageNet-Hard -----------------------------------------------------------------

def default_dataset(home=None) -> Path:
    return homes.dist_dir(home) / "imagenet-hard"


def resolve(dataset: str | Path | None, home=None) -> str:
    """A local folder (absolute path) or a Hub id; clear errors for anything else."""
    if dataset is None:
        path = default_dataset(home)
        if not path.is_dir():
            raise MissingFileError(
                f"no published dataset at {path}; run `imhard publish` first, or pass "
                "--dataset taesiri/imagenet-hard (or any folder with that schema)")
        return str(path)
    path = Path(dataset).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InvalidValueError(f"--dataset {dataset}: expected a folder (data/*.parquet) or a "
                                    "Hub id, got a file")
        return str(path.resolve())
    if _HUB_ID.match(str(dataset)) and not str(dataset).startswith((".", "/", "~")):
        return str(dataset)
    raise MissingFileError(f"--dataset {dataset}: no such folder, and not a Hub id (OWNER/NAME)")


def _hub_folder(dataset_id: str) -> Path:
    return Path(hub_cache()) / f"datasets--{dataset_id.replace('/', '--')}"


def _unreachable_and_not_cached(dataset_id: str) -> str | None:
    """The Hub's host when it does not resolve and ``dataset_id`` is not in the hub cache, so the
    load would only fail, after ``datasets``' five retries (about 25 s); else None."""
    import socket
    from urllib.parse import urlparse

    if Path(dataset_id).is_dir() or _hub_folder(dataset_id).is_dir():
        return None
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except (OSError, UnicodeError):
        return host
    return None


def _data_files(dataset_id: str, split: str) -> list[str]:
    """The files holding ``split``: in a local folder, ``data/<split>-*.parquet`` (the card's
    default config, as ``imhard publish`` and the Hub lay it out; earlier versions under
    ``versions/`` are not the folder's data), read with pyarrow; for a Hub id, the Arrow files
    ``datasets`` caches it in."""
    if not isinstance(split, str) or not SPLIT.fullmatch(split):
        # a split may come from a stranger's result file: never a path out of the folder
        raise InvalidValueError(f"split {str(split)[:40]!r} is not a split name (letters, "
                                "digits, _ and .); pass one such as validation")
    if Path(dataset_id).is_dir():
        files = sorted(str(p) for p in Path(dataset_id, "data").glob(f"{split}-*.parquet"))
        if not files:
            raise InvalidValueError(f"{dataset_id} has no split {split!r}: no "
                                    f"data/{split}-*.parquet in it")
        return files
    import datasets

    host = _unreachable_and_not_cached(dataset_id)
    if host:
        raise MissingFileError(f"could not load dataset {dataset_id}: {host} cannot be reached "
                               "from this machine and the dataset is not in the hub cache; "
                               "download it where there is network, or pass --dataset FOLDER.")
    try:
        ds = datasets.load_dataset(dataset_id, split=split)
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise InvalidValueError(f"{dataset_id} has no split {split!r}: {exc}") from exc
        raise InvalidValueError(f"could not load {dataset_id}: {exc}") from exc
    except FileNotFoundError as exc:
        raise MissingFileError(f"could not load dataset {dataset_id}: {exc}") from exc
    except Exception as exc:  # datasets raises many kinds (offline, gated, bad parquet)
        raise InvalidValueError(f"could not load dataset {dataset_id}: "
                                f"{type(exc).__name__}: {exc}") from exc
    if not ds.cache_files:
        raise InvalidValueError(f"{dataset_id} was loaded in memory; scoring needs it on disk "
                                "(unset HF_DATASETS_IN_MEMORY_MAX_SIZE)")
    return [f["filename"] for f in ds.cache_files]


@functools.cache
def _use_system_memory_pool() -> None:
    """Once per process: the pool is process-wide, so setting it again per read gains nothing."""
    # mimalloc, Arrow's default pool, keeps the pages of freed batches, so the parent's footprint
    # grew with the rows read; the system allocator hands them back (20k rows: 188 -> 174 MiB).
    pa.set_memory_pool(pa.system_memory_pool())


def _batches(files: list[str], columns: list[str]):
    """Record batches of ``columns`` of parquet or Arrow stream files, a row group at a time
    and never memory-mapped: a mapped file's touched pages stay in the resident set, and
    ``iter_batches`` reads ahead, so either made memory grow with the rows."""
    import pyarrow.parquet as pq

    _use_system_memory_pool()
    for name in files:
        if name.endswith(".parquet"):
            pf = pq.ParquetFile(name)
            for i in range(pf.num_row_groups):
                yield from pf.read_row_group(i, columns=columns).to_batches()
            continue
        with pa.OSFile(name) as f:
            for batch in pa.ipc.open_stream(f):
                yield batch.select(columns)


def _schema(name: str) -> pa.Schema:
    import pyarrow.parquet as pq

    if name.endswith(".parquet"):
        return pq.read_schema(name)
    with pa.OSFile(name) as f:
        return pa.ipc.open_stream(f).schema


def _image_bytes(column, source: str, first: int):
    """Each image's stored bytes of an Arrow ``image`` column (``{bytes, path}`` structs)."""
    for start in range(0, len(column), 256):   # a slice at a time, not the batch twice over
        part = column.slice(start, 256)
        data, paths = part.field("bytes"), part.field("path")
        for k in range(len(part)):
            b = data[k].as_py()
            if b is None:
                # A path is not followed: the dataset is a stranger's, and its path could name
                # any file on this machine, which would then be copied where the child reads.
                raise InvalidValueError(
                    f"row {first + start + k} of {source} stores its image as a path "
                    f"({str(paths[k].as_py())[:80]!r}), not bytes; scoring reads only the bytes a "
                    "dataset holds: save it with the images embedded (as `imhard publish` and "
                    "`push_to_hub` do)")
            yield b


def _images(files: list[str]):
    for batch in _batches(files, ["image"]):
        yield batch.column(0)


def _cached_fingerprint(files, rows: Rows, cache: Path, source: str) -> str:
    """Hashing every image takes seconds on the full set: remember it per data files (their
    paths, sizes and modification times)."""
    key = hashlib.sha256("\n".join(f"{f}:{os.stat(f).st_size}:{os.stat(f).st_mtime_ns}"
                                    for f in files).encode()).hexdigest()
    known = json.loads(cache.read_text()) if cache.exists() else {}
    def hashed():   # a batch at a time: no list of every row's id, labels and image hash
        n = 0
        for column in _images(files):
            part = rows.take(range(n, n + len(column)))
            yield from zip(part.ids.to_pylist(), part.labels.to_pylist(),
                           (hashlib.sha256(b).hexdigest() for b in
                            _image_bytes(column, source, n)), strict=True)
            n += len(column)

    if key not in known:
        known[key] = fingerprint(hashed())
        write_json_atomic(cache, known)
    return known[key]


def published_set(dataset=None, split: str = "validation", home=None,
                  limit: int | None = None) -> ScoreSet:
    """The published ImageNet-Hard (default ``<home>/dist/imagenet-hard``) under its protocol;
    a plain ``imhard score`` scores it as a suite of one, its cache named by ``limit`` too."""
    dataset_id = resolve(dataset, home)
    files = _data_files(dataset_id, split)
    names = _schema(files[0]).names
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InvalidValueError(f"{dataset_id} lacks column(s) {', '.join(missing)}; a scored "
                                f"dataset needs {', '.join(REQUIRED_COLUMNS)} (taesiri/imagenet-hard schema)")
    cols = [c for c in ("id", "label", "origin") if c in names]
    batches = [b for b in _batches(files, cols) if b.num_rows]
    if not batches:
        raise InvalidValueError(f"{dataset_id} split {split!r} has no rows")
    table = pa.Table.from_batches(batches)
    ids = (pc.cast(_column(table.column("id")), pa.string()) if "id" in names
           else pa.array([str(i) for i in range(table.num_rows)]))
    label = _column(table.column("label"))
    labels = pc.cast(label if pa.types.is_list(label.type) or pa.types.is_large_list(label.type)
                     else pa.ListArray.from_arrays(pa.array(np.arange(len(label) + 1,
                                                                      dtype=np.int32)), label),
                     LABELS)
    rows = Rows(ids, labels, pc.cast(_column(table.column("origin")), pa.string()))
    fp = _cached_fingerprint(files, rows, homes.scores_dir(home) / "fingerprints.json",
                             dataset_id)
    hidden = dataset_id if Path(dataset_id).is_dir() else str(_hub_folder(dataset_id))
    key = hashlib.sha256(f"{fp}\n{split}".encode()).hexdigest()
    return ScoreSet(name=IMAGENET_HARD_SET, protocol=IMAGENET_HARD, source=dataset_id, all=rows,
                    fingerprint=fp, classes=None,
                    cache_key=f"{fp[:16]}-{split}-{limit or 'all'}",
                    images=lambda: stored_images(key, _images(files), f"{dataset_id} ({split})",
                                                 home),
                    split=split, label_files=(*files, hidden))


# -- choosing sets -------------------------------------------------------------------------------

def built_tables(home=None) -> dict[str, Path]:
    """Every built source table by set name, in :data:`SET_ORDER`."""
    return {r.name: r.path(home) for r in sorted(catalog.built(home), key=_order)}


def _order(ref: catalog.TableRef) -> tuple:
    known = SET_ORDER.index(ref.name) if ref.name in SET_ORDER else len(SET_ORDER)
    return known, ref.variant is not None, ref.name


def resolve_sets(names: list[str] | None = None, dataset=None, split: str = "validation",
                 home=None) -> list[ScoreSet]:
    """The sets to score: ``names`` (default: every built table plus the published
    ImageNet-Hard when it is there, or ``dataset`` when given)."""
    if names:
        tables = [n for n in names if catalog.parse(n).name != IMAGENET_HARD_SET]
        chosen = sorted(catalog.select(tables, home, option="--suite"), key=_order)
        published = len(tables) < len(names)  # opening it says what is missing, if anything
    else:
        chosen = sorted(catalog.built(home), key=_order)
        published = dataset is not None or default_dataset(home).is_dir()
    if not chosen and not published:
        raise MissingFileError("no set to score: build a source first (`imhard build --source "
                               "sample` works offline) or publish ImageNet-Hard")
    out = [table_set(r.name, r.path(home), home) for r in chosen]
    return out + ([published_set(dataset, split, home)] if published else [])


# -- the images the child reads ------------------------------------------------------------------

def images_key(shas: list[str]) -> str:
    """Names an ordered list of images by content (row order matters: it is the row index)."""
    h = hashlib.sha256()
    for sha in shas:
        h.update(sha.encode("ascii") + b"\n")
    return h.hexdigest()


def table_images(paths: list[str], shas: list[str], source: str,
                 home=None) -> tuple[list[str], list[str]]:
    """``([images.arrow], [folder])`` for the images at ``paths`` (relative to the data home,
    in table order), linked once per content and reused by every later run."""
    home = homes.data_home(home)

    def fill(tmp: Path):
        for i, (rel, sha) in enumerate(zip(paths, shas, strict=True)):
            src = homes.inside_home(home, rel, f"row {i} of {source}")
            if not src.is_file():
                raise MissingFileError(f"{src} (row {i} of {source}) is gone; rebuild the source "
                                       "with `imhard build --force`")
            name = f"{i:09d}{src.suffix if _EXT.match(src.suffix) else '.img'}"
            try:
                os.link(src, tmp / name, follow_symlinks=True)
            except OSError:  # another file system, or links not allowed here
                shutil.copyfile(src, tmp / name)
            if sha256_file(tmp / name) != sha:
                raise InvalidValueError(f"{src} (row {i} of {source}) changed since it was built "
                                        f"(its SHA-256 is no longer {sha[:12]}…); rebuild the "
                                        "source with `imhard build --force`")
            yield name

    return _folder(images_dir(images_key(shas), home), source, fill)


def stored_images(key: str, columns, source: str, home=None) -> tuple[list[str], list[str]]:
    """The same for images stored in Arrow ``image`` columns (a batch at a time, in row order):
    each written to its own file once per ``key``, so the child reads files, not a memory-mapped
    Arrow file whose pages would stay in its resident set."""
    def fill(tmp: Path):
        n = 0
        for column in columns:
            for data in _image_bytes(column, source, n):
                name = f"{n:09d}.img"
                (tmp / name).write_bytes(data)
                n += 1
                yield name

    return _folder(images_dir(key, home), source, fill)


def images_dir(key: str, home=None) -> Path:
    return homes.scores_dir(home) / "images" / key[:32]


def _check_unchanged(folder: Path, source: str) -> None:
    """Refuse a prepared folder whose files changed since their hashes were checked."""
    recorded = np.asarray(json.loads((folder / STAT).read_text()), dtype=np.int64).reshape(-1, 2)
    with pa.OSFile(str(folder / ARROW)) as f:
        i = 0
        for batch in pa.ipc.open_stream(f):
            for path in batch.column(0).field("path").to_pylist():
                st = os.stat(folder / Path(path).name)
                if i >= len(recorded) or [st.st_size, st.st_mtime_ns] != recorded[i].tolist():
                    raise InvalidValueError(
                        f"image {i} of {source} changed after it was built (in place: "
                        f"{folder / Path(path).name} shares its file); rebuild the source with "
                        f"`imhard build --force` and delete {folder}")
                i += 1


def _folder(final: Path, source: str, fill) -> tuple[list[str], list[str]]:
    """Make ``final`` (the files ``fill(tmp)`` yields the names of, then ``images.arrow`` naming
    them and ``stat.json``) under a temporary name, or reuse it when it is there and unchanged."""
    from datasets import Features, Image
    from datasets.arrow_writer import ArrowWriter

    if (final / ARROW).is_file():
        _check_unchanged(final, source)
        return [str(final / ARROW)], [str(final)]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        stats, batch = [], []
        with ArrowWriter(features=Features({"image": Image()}), path=str(tmp / ARROW)) as w:
            for name in fill(tmp):
                st = os.stat(tmp / name)
                stats += [st.st_size, st.st_mtime_ns]
                batch.append({"bytes": None, "path": str(final / name)})
                if len(batch) == 1000:
                    w.write_batch({"image": batch})
                    batch = []
            if batch:
                w.write_batch({"image": batch})
            w.finalize()
        stats = np.asarray(stats, dtype=np.int64).reshape(-1, 2)
        (tmp / STAT).write_text(json.dumps(stats.tolist()))
        try:
            os.rename(tmp, final)
        except OSError:  # another run made it meanwhile: theirs is as good as ours
            if not (final / ARROW).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [str(final / ARROW)], [str(final)]


# -- scoring folders for tests, benchmarks and quick looks ---------------------------------------

def write_folder(dest: str | Path, images: list[bytes], labels: list[list[int]],
                 origins: list[str], ids: list[str]) -> Path:
    """A scoring dataset folder in the published schema (``dest/data/validation-*.parquet``);
    publishing proper is ``imhard publish``."""
    from datasets import Dataset, Features, Image, List, Value

    from ..labels import english_labels

    feats = Features({"image": Image(), "label": List(Value("int64")), "origin": Value("string"),
                      "english_label": List(Value("string")), "id": Value("string")})
    ds = Dataset.from_dict({
        "image": [{"bytes": b, "path": None} for b in images], "label": labels,
        "origin": origins, "english_label": [english_labels(x) for x in labels], "id": ids,
    }, features=feats)
    dest = Path(dest)
    with atomic_path(dest / "data" / "validation-00000-of-00001.parquet") as tmp:
        ds.to_parquet(str(tmp))
    return dest


def folder_from_source(table: str | Path, dest: str | Path, home=None, repeat: int = 1) -> Path:
    """A scoring dataset from a source table (``imhard build``), each image ``repeat`` times."""
    import pyarrow.parquet as pq

    rows = pq.read_table(table).to_pylist()
    base = homes.data_home(home)
    images, labels, origins, ids = [], [], [], []
    for k in range(repeat):
        for r in rows:
            what = f"source table {Path(table).stem!r} row {r['id']!r}"
            images.append(homes.inside_home(base, r["path"], what).read_bytes())
            labels.append(r["label"])
            origins.append(r["origin"])
            ids.append(r["id"] if repeat == 1 else f"{r['id']}#{k}")
    return write_folder(dest, images, labels, origins, ids)
