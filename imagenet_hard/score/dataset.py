"""The dataset a submission is scored on: the local published build, any folder or Hub repo with
the ``taesiri/imagenet-hard`` schema, loaded with ``datasets``.

The parent opens it (and downloads it, for a Hub id); the child only ever receives the images
alone (:func:`image_files`), so it needs neither network nor tokens to read images and cannot read
the labels. Both read the images a batch at a time, never through a memory map of the whole split,
so memory stays flat as the dataset grows.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .. import home as homes
from ..errors import InvalidValueError, MissingFileError
from ..files import atomic_path, write_json_atomic
from ..fingerprint import fingerprint

REQUIRED_COLUMNS = ("image", "label", "origin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass
class ScoreDataset:
    """One split, opened: what the parent needs to score, and where the child reads images."""

    id: str                  # folder path or Hub repo id, as given
    split: str
    ds: object               # datasets.Dataset
    ids: list[str]
    labels: list[list[int]]
    origins: list[str]
    fingerprint: str
    arrow_files: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def label_files(self) -> list[str]:
        """Where this split's labels are on disk: the ``datasets`` cache files, and the folder or
        the hub cache repository it was loaded from (what the sandbox must never show)."""
        from .sandbox import hub_cache

        out = list(self.arrow_files)
        if Path(self.id).is_dir():
            out.append(self.id)
        else:
            out.append(str(Path(hub_cache()) / ("datasets--" + self.id.replace("/", "--"))))
        return out


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


def _unreachable_and_not_cached(dataset_id: str) -> str | None:
    """The Hub's host when it does not resolve and ``dataset_id`` is not in the hub cache, so the
    load would only fail, after ``datasets``' five retries (about 25 s); else None."""
    import socket
    from urllib.parse import urlparse

    from ..models.weights import hf_cache_dir

    if Path(dataset_id).is_dir() or (hf_cache_dir() / f"datasets--{dataset_id.replace('/', '--')}"
                                     ).is_dir():
        return None
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except (OSError, UnicodeError):
        return host
    return None


def _load(dataset_id: str, split: str):
    import datasets

    host = _unreachable_and_not_cached(dataset_id)
    if host:
        raise MissingFileError(f"could not load dataset {dataset_id}: {host} cannot be reached "
                               "from this machine and the dataset is not in the hub cache; "
                               "download it where there is network, or pass --dataset FOLDER.")
    try:
        return datasets.load_dataset(dataset_id, split=split)
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise InvalidValueError(f"{dataset_id} has no split {split!r}: {exc}") from exc
        raise InvalidValueError(f"could not load {dataset_id}: {exc}") from exc
    except FileNotFoundError as exc:
        raise MissingFileError(f"could not load dataset {dataset_id}: {exc}") from exc
    except Exception as exc:  # datasets raises many kinds (offline, gated, bad parquet)
        raise InvalidValueError(f"could not load dataset {dataset_id}: "
                                f"{type(exc).__name__}: {exc}") from exc


def image_batches(arrow_files: list[str]):
    """The ``image`` column of ``datasets`` cache files, one record batch at a time, read (not
    memory-mapped): a mapped file's pages stay in the process's resident set once touched, so
    reading every image through the map made memory grow with the dataset."""
    import pyarrow as pa

    for name in arrow_files:
        with pa.OSFile(name) as f:
            reader = pa.ipc.open_stream(f)
            for batch in reader:
                yield batch.column(batch.schema.get_field_index("image"))


def _image_sha256s(arrow_files: list[str]) -> list[str]:
    """SHA-256 of every image's stored bytes, read from Arrow without decoding."""
    out: list[str] = []
    for chunk in image_batches(arrow_files):
        # A slice at a time: turning a whole batch into Python bytes at once would hold it twice.
        for start in range(0, len(chunk), 256):
            part = chunk.slice(start, 256)
            data, paths = part.field("bytes"), part.field("path")
            for k in range(len(part)):
                b = data[k].as_py()
                if b is None:
                    p = paths[k].as_py()
                    if not p:
                        raise InvalidValueError(f"row {len(out)} has an image with neither bytes "
                                                "nor path")
                    b = Path(p).read_bytes()
                out.append(hashlib.sha256(b).hexdigest())
    return out


def _cached_fingerprint(ds, ids, labels, cache: Path, arrow_files: list[str]) -> str:
    """Hashing every image takes seconds on the full set: remember it per ``datasets`` fingerprint."""
    key = f"{ds._fingerprint}"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    if key in known:
        return known[key]
    value = fingerprint(zip(ids, labels, _image_sha256s(arrow_files), strict=True))
    known[key] = value
    write_json_atomic(cache, known)
    return value


def open_dataset(dataset: str | Path | None = None, split: str = "validation",
                 home=None) -> ScoreDataset:
    """Load ``dataset`` (default: ``<home>/dist/imagenet-hard``) and compute its fingerprint."""
    dataset_id = resolve(dataset, home)
    ds = _load(dataset_id, split)
    missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
    if missing:
        raise InvalidValueError(f"{dataset_id} lacks column(s) {', '.join(missing)}; a scored "
                                f"dataset needs {', '.join(REQUIRED_COLUMNS)} (taesiri/imagenet-hard schema)")
    if len(ds) == 0:
        raise InvalidValueError(f"{dataset_id} split {split!r} has no rows")
    ids = ([str(x) for x in ds.data.column("id").to_pylist()] if "id" in ds.column_names
           else [str(i) for i in range(len(ds))])
    labels = [[int(x) for x in (lab if isinstance(lab, list) else [lab])]
              for lab in ds.data.column("label").to_pylist()]
    origins = [str(o) for o in ds.data.column("origin").to_pylist()]
    if not ds.cache_files:
        raise InvalidValueError(f"{dataset_id} was loaded in memory; scoring needs it on disk "
                                "(unset HF_DATASETS_IN_MEMORY_MAX_SIZE)")
    arrow_files = [f["filename"] for f in ds.cache_files]
    fp = _cached_fingerprint(ds, ids, labels, homes.scores_dir(home) / "fingerprints.json",
                             arrow_files)
    return ScoreDataset(id=dataset_id, split=split, ds=ds, ids=ids, labels=labels,
                        origins=origins, fingerprint=fp, arrow_files=arrow_files)


def image_files(sds: ScoreDataset, home=None) -> tuple[list[str], list[str]]:
    """What the child reads: the split's images and nothing else (the published files also hold
    the labels, which a submission must never be able to open), one file per image and an Arrow
    file naming them, as for a source table (:func:`.suite.images.stored_images`). Written once
    per fingerprint and split, under ``<home>/scores/images/``: ``([arrow file], [folder])``."""
    from .suite.images import stored_images

    key = hashlib.sha256(f"{sds.fingerprint}\n{sds.split}".encode()).hexdigest()
    return stored_images(key, image_batches(sds.arrow_files), f"{sds.id} ({sds.split})", home)


def write_folder(dest: str | Path, images: list[bytes], labels: list[list[int]],
                 origins: list[str], ids: list[str]) -> Path:
    """A scoring dataset folder in the published schema (``dest/data/validation-*.parquet``), for
    tests, benchmarks and quick looks at a source table; publishing proper is ``imhard publish``."""
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
