"""Small file helpers every stage uses: atomic writes, hashing and bounded reads."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InvalidValueError

CHUNK = 1 << 20
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
#: Open flags for a file a stranger may have put there: no link followed, no blocking on a FIFO.
NO_FOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds.

    A crash or an exception leaves ``dest`` as it was (absent or the previous complete version).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(dest: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_json_atomic(dest: str | os.PathLike, obj) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return write_bytes_atomic(dest, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def is_sha256(text) -> bool:
    """Whether ``text`` is a SHA-256 as this project writes it: 64 lowercase hex digits."""
    return isinstance(text, str) and _SHA256_RE.fullmatch(text) is not None


def check_sha256(text: str, what: str = "sha256") -> str:
    """``text`` as 64 lowercase hex digits (upper case is accepted), or an error naming ``what``."""
    if not isinstance(text, str) or not is_sha256(text.strip().lower()):
        raise InvalidValueError(f"{what} must be 64 hex digits (a SHA-256), got {text!r}")
    return text.strip().lower()


def read_regular(path: str | os.PathLike, limit: int) -> bytes | None:
    """The bytes of ``path`` when it is a regular file of at most ``limit`` bytes, else None;
    never follows a link nor blocks on a FIFO (the file may sit where a stranger wrote)."""
    try:
        fd = os.open(path, NO_FOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return read_exactly(fd, st.st_size)
    finally:
        os.close(fd)


def read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd``, or None when the file holds fewer or more."""
    chunks, left = [], size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 24))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks) if not os.read(fd, 1) else None
