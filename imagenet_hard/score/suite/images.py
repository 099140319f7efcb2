"""What the sandboxed child reads for a source table: its images and nothing else.

A source table's rows point at image files under the data home, inside folders whose names are
the labels (``imagenet-a/<wnid>/…``) or beside label files, so neither the table nor those
folders may be shown to a submission. Instead, each table gets a folder under
``<home>/scores/images/<key>/`` holding its images as ``000000000.jpg``, ``000000001.png`` … in
table order — hard links to the built files (no copy; a copy when the data home spans file
systems) — and ``images.arrow``, a ``datasets`` Arrow file whose ``image`` column names those
files. The sandbox mounts that folder read-only. Each file is checked against the SHA-256 the
table recorded when it is linked, so what a model is scored on is what was built; a hard link
shares its file with the source, so every later run checks each file's size and modification
time against ``stat.json`` (cheap) and refuses a file changed in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from ... import home as homes
from ...errors import InvalidValueError, MissingFileError
from ...files import sha256_file

ARROW = "images.arrow"
STAT = "stat.json"
_EXT = re.compile(r"^\.[A-Za-z0-9]{1,6}$")


def images_key(shas: list[str]) -> str:
    """Names an ordered list of images by content (row order matters: it is the row index)."""
    h = hashlib.sha256()
    for sha in shas:
        h.update(sha.encode("ascii") + b"\n")
    return h.hexdigest()


def images_dir(key: str, home=None) -> Path:
    return homes.scores_dir(home) / "images" / key[:32]


def _place(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest, follow_symlinks=True)
    except OSError:  # another file system, or links not allowed here
        shutil.copyfile(src, dest)


def _fill(folder: Path, final: Path, home: Path, paths: list[str], shas: list[str],
          source: str) -> list[str]:
    names = []
    for i, (rel, sha) in enumerate(zip(paths, shas, strict=True)):
        src = homes.inside_home(home, rel, f"row {i} of {source}")
        if not src.is_file():
            raise MissingFileError(f"{src} (row {i} of {source}) is gone; rebuild the source "
                                   "with `imhard build --force`")
        ext = src.suffix if _EXT.match(src.suffix) else ".img"
        name = f"{i:09d}{ext}"
        _place(src, folder / name)
        if sha256_file(folder / name) != sha:
            raise InvalidValueError(f"{src} (row {i} of {source}) changed since it was built "
                                    f"(its SHA-256 is no longer {sha[:12]}…); rebuild the source "
                                    "with `imhard build --force`")
        names.append(str(final / name))
    return names


def _stats(folder: Path, names: list[str]) -> list[list[int]]:
    out = []
    for name in names:
        st = os.stat(folder / Path(name).name)
        out.append([st.st_size, st.st_mtime_ns])
    return out


def _check_unchanged(folder: Path, source: str) -> None:
    """Refuse a prepared folder whose files changed since their hashes were checked."""
    import datasets

    names = [r["path"] for r in datasets.Dataset.from_file(str(folder / ARROW)).data.column(
        "image").to_pylist()]
    recorded = json.loads((folder / STAT).read_text())
    for i, (now, then) in enumerate(zip(_stats(folder, names), recorded, strict=True)):
        if now != then:
            raise InvalidValueError(f"image {i} of {source} changed after it was built (in place: "
                                    f"{folder / Path(names[i]).name} shares its file); rebuild "
                                    f"the source with `imhard build --force` and delete {folder}")


def table_images(paths: list[str], shas: list[str], source: str,
                 home=None) -> tuple[list[str], list[str]]:
    """``([images.arrow], [folder])`` for the images at ``paths`` (relative to the data home,
    in table order), made once per content and reused by every later run."""
    home = homes.data_home(home)
    return _folder(images_dir(images_key(shas), home), source,
                   lambda tmp, final: _fill(tmp, final, home, paths, shas, source))


def stored_images(key: str, columns, source: str, home=None) -> tuple[list[str], list[str]]:
    """The same for images stored in Arrow ``image`` columns (``{bytes, path}`` structs, a batch
    at a time, in row order): each written to its own file once per ``key``, so the child reads
    files, not a memory-mapped Arrow file whose pages would stay in its resident set."""
    def write(tmp: Path, final: Path) -> list[str]:
        names = []
        for column in columns:
            for struct in column.to_pylist():
                data = struct.get("bytes")
                if data is None:
                    if not struct.get("path"):
                        raise InvalidValueError(f"row {len(names)} of {source} has an image "
                                                "with neither bytes nor path")
                    data = Path(struct["path"]).read_bytes()
                name = f"{len(names):09d}.img"
                (tmp / name).write_bytes(data)
                names.append(str(final / name))
        return names

    return _folder(images_dir(key, home), source, write)


def _folder(final: Path, source: str, fill) -> tuple[list[str], list[str]]:
    """Make ``final`` (images written by ``fill(tmp, final)``, then ``images.arrow`` naming them
    and their stat) under a temporary name, or reuse it when it is there and unchanged."""
    from datasets import Features, Image
    from datasets.arrow_writer import ArrowWriter

    if (final / ARROW).is_file():
        _check_unchanged(final, source)
        return [str(final / ARROW)], [str(final)]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        names = fill(tmp, final)
        with ArrowWriter(features=Features({"image": Image()}), path=str(tmp / ARROW)) as w:
            for start in range(0, len(names), 10_000):
                w.write_batch({"image": [{"bytes": None, "path": n}
                                         for n in names[start:start + 10_000]]})
            w.finalize()
        (tmp / STAT).write_text(json.dumps(_stats(tmp, names)))
        try:
            os.rename(tmp, final)
        except OSError:  # another run made it meanwhile: theirs is as good as ours
            if not (final / ARROW).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [str(final / ARROW)], [str(final)]
