"""What a board build learnt from each verified result's predictions, kept between builds.

A build recomputes every number a row shows from the row's predictions (:mod:`.entries`); with a
thousand entries that is most of a rebuild, although between two builds of a hosted board only
the new result changed. The numbers recomputed from a predictions file are kept in a cache,
each under a key made of

- the SHA-256 of the result file's bytes (its claims, its dataset fingerprint and version),
- which set of it (a suite result has one predictions file per set),
- the SHA-256 of the predictions file's bytes (its top-5, probabilities, correct flags, origins:
  the labels as the board knows them),
- the dataset fingerprint the result names, and :data:`CHECKS` (the version of these checks),

so a change to any of them misses and the entry is checked from its predictions again. A hit
still hashes the predictions file and compares it with the SHA-256 the result records, and
still compares every claim of the result with the cached numbers (the same sentences as without
the cache); only the parquet is not read again.

The cache lives in the data home, ``<home>/leaderboard/checked/<board>.json``, never in the
board folder (which is uploaded, and whose ``results/`` a Hub worker fills from the repository),
and is written atomically by the build itself. Each entry carries an HMAC-SHA-256 of its key and
value under a random key kept beside it (``key``, mode 0600) that no board and no result
contains; an entry whose MAC does not verify — edited by hand, garbled, forged without the
key — is ignored and the entry is checked afresh. Whoever can write the data home can also run
the worker's code, so the key guards against edits and accidents, not against the machine's
owner.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import read_regular, sha256_bytes, write_bytes_atomic
from ..home import data_home

#: Bump when what a hit stands for changes (recompute, the cached fields): old entries then miss.
CHECKS = "1"
KEY_BYTES = 32
#: A cache file larger than this is not read (a 1,000-entry board's is about 2.5 MB).
MAX_CACHE_BYTES = 256 << 20


@dataclass(frozen=True)
class Checked:
    """The numbers recomputed from one predictions table, and its columns the host pairs on."""

    metrics: dict
    origins: list[dict]
    rows: int
    ids: object                 # pyarrow string array
    correct: np.ndarray         # bool, per row


def _key(folder: Path) -> bytes:
    """The MAC key, made once (a new one if the file is missing or not a key)."""
    path = folder / "key"
    key = read_regular(path, KEY_BYTES + 1)
    if key is not None and len(key) == KEY_BYTES:
        return key
    folder.mkdir(parents=True, exist_ok=True)
    new = secrets.token_bytes(KEY_BYTES)
    tmp = folder / f".key.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(new)
    try:
        if key is None:
            try:
                os.link(tmp, path)      # two builds at once: one key wins, the other reads it
            except FileExistsError:
                again = read_regular(path, KEY_BYTES + 1)
                if again is not None and len(again) == KEY_BYTES:
                    return again
                os.replace(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return new


def _ids_digest(ids) -> str:
    """SHA-256 of a string array's values (their lengths and bytes), without a Python string per
    row: every entry on one dataset shares its ids, stored once."""
    import pyarrow as pa

    ids = ids.cast(pa.string())
    if ids.null_count:
        return sha256_bytes(json.dumps(ids.to_pylist()).encode())
    _, offsets, data = ids.buffers()
    ends = np.frombuffer(offsets, np.int32)[ids.offset:ids.offset + len(ids) + 1]
    h = hashlib.sha256(b"ids\n%d\n" % len(ids))
    h.update((ends - ends[0]).astype("<i8").tobytes())
    h.update(memoryview(data)[int(ends[0]):int(ends[-1])] if len(ids) else b"")
    return h.hexdigest()


class CheckCache:
    """One board's cache; :meth:`get` / :meth:`put` during a build, :meth:`save` after it."""

    def __init__(self, file: Path | None, key: bytes | None):
        self.file, self._mac_key = file, key
        self._entries: dict[str, dict] = {}
        self._ids: dict[str, dict] = {}
        self._used: set[str] = set()
        self._used_ids: set[str] = set()
        self._id_arrays: dict[str, object] = {}
        self._dirty = False
        self.hits = 0

    @classmethod
    def for_board(cls, board_dir: str | Path, home=None) -> CheckCache:
        folder = data_home(home) / "leaderboard" / "checked"
        name = hashlib.sha256(str(Path(board_dir).resolve()).encode()).hexdigest()[:32]
        cache = cls(folder / f"{name}.json", _key(folder))
        cache._load()
        return cache

    @classmethod
    def disabled(cls) -> CheckCache:
        return cls(None, None)

    # -- MACs -----------------------------------------------------------------------------------
    def _mac(self, kind: str, key: str, value) -> str:
        text = json.dumps([CHECKS, kind, key, value], sort_keys=True, separators=(",", ":"))
        return hmac.new(self._mac_key, text.encode(), hashlib.sha256).hexdigest()

    def _valid(self, kind: str, key: str, item) -> bool:
        return (isinstance(item, dict) and set(item) == {"value", "mac"}
                and isinstance(item["mac"], str)
                and hmac.compare_digest(item["mac"], self._mac(kind, key, item["value"])))

    def _load(self) -> None:
        data = read_regular(self.file, MAX_CACHE_BYTES)
        if data is None:
            return
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return                       # garbled: every entry is checked afresh
        if not isinstance(doc, dict) or doc.get("checks") != CHECKS:
            return
        for kind, store in (("entry", self._entries), ("ids", self._ids)):
            items = doc.get(kind)
            if isinstance(items, dict):
                store.update({k: v for k, v in items.items() if self._valid(kind, k, v)})

    # -- entries --------------------------------------------------------------------------------
    @staticmethod
    def entry_key(result_sha: str, part: str, predictions_sha: str, fingerprint: str) -> str:
        return sha256_bytes("\n".join((CHECKS, result_sha, part, predictions_sha,
                                       str(fingerprint))).encode())

    def get(self, key: str) -> Checked | None:
        if self.file is None:
            return None
        item = self._entries.get(key)
        try:
            value = item["value"]
            checked = Checked(value["metrics"], value["per_origin"], int(value["rows"]),
                              self._id_array(value["ids"]), _unpack(value["correct"],
                                                                    int(value["rows"])))
            if len(checked.ids) != checked.rows:
                raise ValueError("ids")
        except (TypeError, KeyError, ValueError):
            return None
        self._used.add(key)
        self._used_ids.add(value["ids"])
        self.hits += 1
        return checked

    def _id_array(self, ids_sha: str):
        import pyarrow as pa

        if ids_sha not in self._id_arrays:
            self._id_arrays[ids_sha] = pa.array(self._ids[ids_sha]["value"], pa.string())
        return self._id_arrays[ids_sha]

    def put(self, key: str, checked: Checked) -> None:
        if self.file is None:
            return
        ids_sha = _ids_digest(checked.ids)
        if ids_sha not in self._ids:
            ids = checked.ids.to_pylist()
            self._ids[ids_sha] = {"value": ids, "mac": self._mac("ids", ids_sha, ids)}
        value = {"metrics": checked.metrics, "per_origin": checked.origins,
                 "rows": checked.rows, "ids": ids_sha, "correct": _pack(checked.correct)}
        # numbers through JSON once, so what is stored and MACed is what a later build reads
        value = json.loads(json.dumps(value))
        self._entries[key] = {"value": value, "mac": self._mac("entry", key, value)}
        self._used.add(key)
        self._used_ids.add(ids_sha)
        self._dirty = True

    def save(self) -> None:
        """Write the entries this build used (others are dropped), when anything changed."""
        if self.file is None:
            return
        if not self._dirty and set(self._entries) == self._used and set(self._ids) == self._used_ids:
            return
        doc = {"checks": CHECKS,
               "entry": {k: self._entries[k] for k in sorted(self._used)},
               "ids": {k: self._ids[k] for k in sorted(self._used_ids)}}
        write_bytes_atomic(self.file, json.dumps(doc, separators=(",", ":")).encode())


def _pack(correct: np.ndarray) -> str:
    return base64.b64encode(np.packbits(np.asarray(correct, bool)).tobytes()).decode("ascii")


def _unpack(text: str, rows: int) -> np.ndarray:
    bits = np.frombuffer(base64.b64decode(text, validate=True), np.uint8)
    if len(bits) != (rows + 7) // 8:
        raise ValueError("correct")
    return np.unpackbits(bits)[:rows].astype(bool)
