"""What a queue holds: requests as filed (untrusted), the worker's own state of each, and the
board's settings.

A :class:`Request` is parsed from a stranger's JSON: only the fields below are read, each checked
by type and pattern (ids, SHA-256s, submitter names, file names, set names, TTA modes), so a
record that names another path, a traversal or markup is refused before anything uses it. A
request never carries its status: a ``"status": "FINISHED"`` written into a request file is one
more field that is not read. The status is the worker's :class:`State`, kept apart from the
requests (the folder queue's ``state/`` log, the Hub queue's ``state/`` files), and a request
without one is pending.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import secrets
from dataclasses import asdict, dataclass, field, replace

from ..errors import InvalidValueError
from ..files import is_sha256

PENDING, RUNNING, FINISHED, FAILED = "PENDING", "RUNNING", "FINISHED", "FAILED"
STATUSES = (PENDING, RUNNING, FINISHED, FAILED)

#: ``20261206T210501Z-<first 8 of the file's SHA-256>-<6 random hex>``: sorts by filing time.
ID_RE = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}-[0-9a-f]{6}")
SUBMITTER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FILE_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}\.py")
SET_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}(/[a-z0-9_]{1,40}(/[1-5])?)?")
MODE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,40}")
#: Largest request record or state record read back (both are a few hundred bytes).
MAX_RECORD_BYTES = 16 * 1024
#: The one line a submitter sees on failure is cut to this.
MAX_REASON = 300
_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def iso(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id(sha256: str, now: _dt.datetime | None = None) -> str:
    now = now or utc_now()
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{sha256[:8]}-{secrets.token_hex(3)}"


def one_line(text: str, most: int = MAX_REASON) -> str:
    """``text`` as one printable line of at most ``most`` characters."""
    flat = " ".join(str(text).split())
    flat = "".join(c if c.isprintable() else "?" for c in flat)
    return flat if len(flat) <= most else flat[:most - 1] + "…"


@dataclass(frozen=True)
class Request:
    """One submission as filed: which file (by SHA-256), by whom, on what, when."""

    id: str
    sha256: str
    file_name: str                  # the submitted file's own name (one .py, no folders)
    submitter: str
    created: str                    # ISO 8601 UTC, second precision
    sets: tuple[str, ...] | None = None   # None: the published ImageNet-Hard; else a suite
    tta: str | None = None
    fingerprint: str = ""           # the board's dataset when filed ("" before any worker ran)
    size: int = 0                   # bytes of the file

    def __post_init__(self):
        checks = [
            (ID_RE.fullmatch(str(self.id)), f"id {self.id!r:.40} is not a request id"),
            (is_sha256(self.sha256), "sha256 must be 64 lowercase hex digits"),
            (isinstance(self.file_name, str) and FILE_NAME_RE.fullmatch(self.file_name),
             f"file_name {self.file_name!r:.60} must be one .py name (letters, digits, _ -), "
             "no folder"),
            (isinstance(self.submitter, str) and SUBMITTER_RE.fullmatch(self.submitter),
             f"submitter {self.submitter!r:.60} must be 1–64 letters, digits, _ . -"),
            (isinstance(self.created, str) and _TIME_RE.fullmatch(self.created),
             "created must be a UTC time like 2026-12-06T21:05:01Z"),
            (self.sets is None or (isinstance(self.sets, tuple) and 0 < len(self.sets) <= 64
                                   and all(isinstance(s, str) and SET_RE.fullmatch(s)
                                           for s in self.sets)),
             f"sets {self.sets!r:.80} must be set names like imagenet-a or imagenet-c/fog"),
            (self.tta is None or (isinstance(self.tta, str) and MODE_RE.fullmatch(self.tta)),
             f"tta {self.tta!r:.60} must be a mode name like zoom-in-mean"),
            (self.fingerprint == "" or is_sha256(self.fingerprint),
             "fingerprint must be empty or 64 lowercase hex digits"),
            (isinstance(self.size, int) and not isinstance(self.size, bool) and self.size >= 0,
             "size must be a whole number of bytes"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidValueError(f"request refused: {message}")

    @property
    def protocol(self) -> str:
        return "imagenet-hard" if self.sets is None else "suite:" + ",".join(sorted(self.sets))

    def key(self, fingerprint: str = "") -> tuple:
        """Two requests with the same key ask for the same numbers; ``fingerprint``: the dataset
        when the request does not name one (filed before the board's worker first ran)."""
        return (self.sha256, self.fingerprint or fingerprint, self.protocol, self.tta or "none")

    def to_json(self) -> bytes:
        data = asdict(self)
        data["sets"] = None if self.sets is None else list(self.sets)
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, expected_id: str) -> Request:
        """A request from a stranger's bytes, or :class:`InvalidValueError`; only known fields
        are read (a forged ``status`` is not one), and the id must be the one its name gave."""
        if len(data) > MAX_RECORD_BYTES:
            raise InvalidValueError(f"request refused: its record is {len(data)} bytes, at most "
                                    f"{MAX_RECORD_BYTES}")
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            raise InvalidValueError("request refused: its record is not JSON") from None
        if not isinstance(raw, dict):
            raise InvalidValueError("request refused: its record is not a JSON object")
        sets = raw.get("sets")
        fields = {k: raw.get(k) for k in ("id", "sha256", "file_name", "submitter", "created")}
        req = cls(**fields, sets=tuple(sets) if isinstance(sets, list) else sets,
                  tta=raw.get("tta"), fingerprint=raw.get("fingerprint", ""),
                  size=raw.get("size", 0))
        if req.id != expected_id:
            raise InvalidValueError(f"request refused: it names id {req.id}, its file is "
                                    f"{expected_id}")
        return req


@dataclass(frozen=True)
class State:
    """The worker's record of a request: the only source of its status."""

    status: str = PENDING
    worker: str = ""
    lease_expires: float = 0.0      # epoch seconds; a RUNNING request past it is pending again
    attempts: int = 0
    reason: str = ""                # FAILED: the one line the submitter sees
    result: str = ""                # FINISHED: where the result is
    updated: str = ""
    fingerprint: str = ""           # the dataset the worker scored it on

    def effective(self, now: float) -> str:
        """PENDING for a RUNNING request whose lease ran out (its worker is gone)."""
        if self.status == RUNNING and self.lease_expires < now:
            return PENDING
        return self.status

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), sort_keys=True) + "\n").encode()

    def but(self, **changes) -> State:
        return replace(self, **changes, updated=iso(utc_now()))

    @classmethod
    def parse(cls, data: bytes) -> State:
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            raw = None
        if not isinstance(raw, dict) or raw.get("status") not in STATUSES:
            raise InvalidValueError("queue state record is damaged; delete it to requeue the "
                                    "request")
        return cls(status=raw["status"], worker=str(raw.get("worker", ""))[:200],
                   lease_expires=float(raw.get("lease_expires") or 0.0),
                   attempts=int(raw.get("attempts") or 0),
                   reason=one_line(raw.get("reason", "")), result=str(raw.get("result", ""))[:500],
                   updated=str(raw.get("updated", ""))[:40],
                   fingerprint=str(raw.get("fingerprint", ""))[:64])


@dataclass(frozen=True)
class BoardSettings:
    """A board's own settings (``board.json``, or ``settings.json`` in a Hub queue)."""

    requests_per_day: int = 5           # per submitter, FAILED ones included
    max_file_bytes: int = 1 << 20       # the submitted .py
    lease_seconds: float = 600.0        # a worker renews its lease every third of this
    fingerprint: str = ""               # the dataset the board scores on (set by the worker)
    title: str = "ImageNet-Hard"
    extra: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes | None) -> BoardSettings:
        if not data:
            return cls()
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            raise InvalidValueError("the board's settings are not JSON; fix or delete them") from None
        if not isinstance(raw, dict):
            raise InvalidValueError("the board's settings must be a JSON object")
        known = {k: raw[k] for k in ("requests_per_day", "max_file_bytes", "lease_seconds",
                                     "fingerprint", "title") if k in raw}
        try:
            s = cls(**known, extra={k: v for k, v in raw.items() if k not in known})
            ok = (int(s.requests_per_day) >= 0 and int(s.max_file_bytes) > 0
                  and float(s.lease_seconds) > 0
                  and (s.fingerprint == "" or is_sha256(s.fingerprint)))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidValueError("the board's settings need requests_per_day ≥ 0, "
                                    "max_file_bytes > 0, lease_seconds > 0 and a SHA-256 "
                                    "fingerprint (or none)")
        return s

    def to_json(self) -> bytes:
        data = {k: v for k, v in asdict(self).items() if k != "extra"}
        return (json.dumps({**self.extra, **data}, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class Entry:
    """A request and its status as the queue shows it."""

    request: Request
    state: State
    version: str                    # the state's version, for compare-and-set

    def status(self, now: float) -> str:
        return self.state.effective(now)

    def key(self, fingerprint: str = "") -> tuple:
        """The request's key, on the dataset it was scored on once it was."""
        return self.request.key(self.state.fingerprint or fingerprint)


@dataclass(frozen=True)
class Refused:
    """A request file that could not be read as a request: shown as FAILED, never run."""

    id: str
    reason: str
