"""The submission queue: one abstraction, two backends, and the claim that makes two workers
never score the same request.

A backend stores three things: request records as filed (untrusted), the submitted files by
SHA-256, and the worker's :class:`~.requests.State` of each request, which it changes only by
*compare-and-set*: :meth:`Queue.put_state` writes a new state only if the request's state is
still the version the caller read, and says whether it did. Everything else — claiming the
oldest pending request, renewing a lease, finishing, failing, taking back a request whose
lease ran out — is written once here on top of that one primitive.

The folder queue (the default, for a lab's private board) keeps each request's state as a log,
``queue/state/<id>/000001.json``, ``000002.json`` …, and writes entry n+1 by ``link(2)`` of a
complete temporary file onto that name. A hard link never replaces an existing name: of two
workers that read version n, exactly one creates n+1 and the other gets ``EEXIST``, and a reader
never sees a half-written entry. ``rename(2)`` cannot do this (it silently replaces the target,
so it moves a file but cannot say "only if nobody else did"), and a DuckDB file would allow one
writing process at a time (the second worker gets a lock error rather than a turn) and must not
live on a network share, where a lab's board folder often is; ``link`` is atomic on local file
systems and on NFS, the classic lock-file technique. The Hub queue (:mod:`.hub`) does the same
compare-and-set with a commit made on the parent commit it read.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

from ..errors import InvalidValueError
from ..files import read_regular, sha256_bytes, write_bytes_atomic
from .requests import (
    FAILED,
    FINISHED,
    MAX_RECORD_BYTES,
    PENDING,
    RUNNING,
    BoardSettings,
    Entry,
    Refused,
    Request,
    State,
    one_line,
)

_STATE_NAME = re.compile(r"(\d{6})\.json")
MAX_SETTINGS_BYTES = 64 * 1024


class Queue:
    """What every backend provides; the queue logic below uses nothing else."""

    name = ""

    def settings(self) -> BoardSettings:
        raise NotImplementedError

    def save_settings(self, settings: BoardSettings) -> None:
        raise NotImplementedError

    def snapshot(self) -> tuple[list[Entry], list[Refused]]:
        """Every request with its state (oldest first), and the records that are not requests."""
        raise NotImplementedError

    def file(self, request: Request, data: bytes) -> None:
        """Store the submitted file and the request record (never replacing one)."""
        raise NotImplementedError

    def read_file(self, request: Request, limit: int) -> bytes | None:
        """The stored file's bytes when it is a regular file of at most ``limit`` bytes."""
        raise NotImplementedError

    def put_state(self, request_id: str, version: str, state: State) -> str | None:
        """Write ``state`` if the request's state is still ``version``: the new version, or
        None when another worker changed it first."""
        raise NotImplementedError


class FolderQueue(Queue):
    """A board folder: ``board.json``, ``queue/inbox/<id>.json``, ``queue/files/<sha>.py``,
    ``queue/state/<id>/NNNNNN.json`` (the worker's log, written by link)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.name = str(self.root)
        self.inbox = self.root / "queue" / "inbox"
        self.files = self.root / "queue" / "files"
        self.states = self.root / "queue" / "state"

    def settings(self) -> BoardSettings:
        return BoardSettings.parse(read_regular(self.root / "board.json", MAX_SETTINGS_BYTES))

    def save_settings(self, settings: BoardSettings) -> None:
        write_bytes_atomic(self.root / "board.json", settings.to_json())

    def ensure(self) -> None:
        for folder in (self.inbox, self.files, self.states):
            folder.mkdir(parents=True, exist_ok=True)
        if not (self.root / "board.json").exists():
            self.save_settings(BoardSettings())

    def _state(self, rid: str) -> tuple[str, State]:
        folder = self.states / rid
        try:
            names = [n for n in os.listdir(folder) if _STATE_NAME.fullmatch(n)]
        except (FileNotFoundError, NotADirectoryError):
            return "000000", State()
        if not names:
            return "000000", State()
        last = max(names)
        data = read_regular(folder / last, MAX_RECORD_BYTES)
        if data is None:
            raise InvalidValueError(f"{folder / last} is not a state record the worker wrote; "
                                    "delete it")
        return last[:6], State.parse(data)

    def snapshot(self) -> tuple[list[Entry], list[Refused]]:
        entries, refused = [], []
        try:
            names = sorted(os.listdir(self.inbox))
        except FileNotFoundError:
            return [], []
        for name in names:
            rid = name.removesuffix(".json")
            if not name.endswith(".json") or rid.startswith("."):
                continue
            try:
                data = read_regular(self.inbox / name, MAX_RECORD_BYTES)
                if data is None:
                    raise InvalidValueError("request refused: its record is not a regular file "
                                            f"of at most {MAX_RECORD_BYTES} bytes")
                req = Request.parse(data, rid)
            except InvalidValueError as exc:
                refused.append(Refused(one_line(rid, 60), one_line(str(exc))))
                continue
            version, state = self._state(rid)
            entries.append(Entry(req, state, version))
        entries.sort(key=lambda e: (e.request.created, e.request.id))
        return entries, refused

    def file(self, request: Request, data: bytes) -> None:
        self.ensure()
        dest = self.files / f"{request.sha256}.py"
        if not dest.exists():
            write_bytes_atomic(dest, data)
        if not _link_new(self.inbox, f"{request.id}.json", request.to_json()):
            raise InvalidValueError(f"request {request.id} exists already; submit again")

    def read_file(self, request: Request, limit: int) -> bytes | None:
        return read_regular(self.files / f"{request.sha256}.py", limit)

    def put_state(self, request_id: str, version: str, state: State) -> str | None:
        folder = self.states / request_id
        folder.mkdir(parents=True, exist_ok=True)
        new = f"{int(version) + 1:06d}"
        return new if _link_new(folder, f"{new}.json", state.to_json()) else None


def _link_new(folder: Path, name: str, data: bytes) -> bool:
    """Create ``folder/name`` holding ``data``, complete, only if no such name exists."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".new-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, folder / name)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


# --- the queue logic, on compare-and-set ---------------------------------------------------------

def claim(queue: Queue, worker: str, now: float | None = None,
          tries: int = 20) -> Entry | None:
    """Mark the oldest pending request (a RUNNING one whose lease ran out counts) RUNNING with a
    lease for ``worker``; None when nothing is pending. Losing a race re-reads and tries again."""
    lease = float(queue.settings().lease_seconds)
    for _ in range(tries):
        t = time.time() if now is None else now
        entries, _ = queue.snapshot()
        pending = [e for e in entries if e.status(t) == PENDING]
        if not pending:
            return None
        for e in pending:
            state = e.state.but(status=RUNNING, worker=worker, lease_expires=t + lease,
                                attempts=e.state.attempts + 1, reason="", result="")
            version = queue.put_state(e.request.id, e.version, state)
            if version is not None:
                return Entry(e.request, state, version)
    return None


def renew(queue: Queue, entry: Entry, lease: float) -> Entry | None:
    """Extend ``entry``'s lease; None when it is no longer this worker's (taken back)."""
    state = entry.state.but(lease_expires=time.time() + lease)
    version = queue.put_state(entry.request.id, entry.version, state)
    return None if version is None else Entry(entry.request, state, version)


def finish(queue: Queue, entry: Entry, result: str, fingerprint: str = "") -> Entry | None:
    state = entry.state.but(status=FINISHED, result=result, reason="", lease_expires=0.0,
                            fingerprint=fingerprint)
    version = queue.put_state(entry.request.id, entry.version, state)
    return None if version is None else Entry(entry.request, state, version)


def fail(queue: Queue, entry: Entry, reason: str) -> Entry | None:
    state = entry.state.but(status=FAILED, reason=one_line(reason), lease_expires=0.0)
    version = queue.put_state(entry.request.id, entry.version, state)
    return None if version is None else Entry(entry.request, state, version)


def duplicate_of(entries: list[Entry], request: Request, fingerprint: str = "") -> Entry | None:
    """An earlier request for the same numbers (same file, dataset, protocol, mode) that has
    not failed: the one a duplicate is answered with. ``fingerprint``: the board's dataset."""
    now = time.time()
    queued = any(e.request.id == request.id for e in entries)
    for e in entries:
        if (e.request.id != request.id and e.key(fingerprint) == request.key(fingerprint)
                and e.status(now) != FAILED
                and (not queued
                     or (e.request.created, e.request.id) < (request.created, request.id))):
            return e
    return None


def filed_since(entries: list[Entry], submitter: str, since: str, before=None) -> int:
    """How many requests ``submitter`` filed at or after ``since`` (ISO time), counting only
    those before ``before`` (a request) when given."""
    return sum(1 for e in entries if e.request.submitter == submitter
               and e.request.created >= since
               and (before is None or (e.request.created, e.request.id)
                    < (before.created, before.id)))


def verify_file(request: Request, data: bytes | None, settings: BoardSettings) -> str | None:
    """Why the stored file cannot be scored for ``request``, or None."""
    if data is None:
        return (f"the submitted file is missing or larger than the board's "
                f"{settings.max_file_bytes:,} bytes")
    if len(data) > settings.max_file_bytes:
        return f"the file is {len(data):,} bytes; the board takes at most {settings.max_file_bytes:,}"
    if sha256_bytes(data) != request.sha256:
        return "the stored file is not the one the request's SHA-256 names"
    return None
