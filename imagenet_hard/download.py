"""The download engine: resumable, verified HTTP(S) transfers and safe archive extraction.

``download`` streams into ``<name>.part``, resumes an interrupted transfer with a Range request,
retries connection errors and 5xx answers with exponential back-off, checks SHA-256 (and a
published MD5 where that is all a dataset publishes) and renames onto ``<name>`` only when the
bytes are complete and verified. Bad bytes are deleted, never left where a later run would trust
them. Without a known checksum the computed one is recorded in ``<name>.sha256`` so later runs
verify against it.

``extract`` unpacks tar, tar.gz and zip (ZipCrypto password zips too) after checking *every*
member first: an absolute path, a ``..`` that climbs out, any link (symbolic or hard: no dataset
archive ships one, and a chain of links that each point inside can still lead out) or a special
file stops the extraction before anything is written. Once the archive is on disk, no entry may
be a link whatever the extractor (``unzip``, ``zipfile``, ``tarfile``) made of the members. It
unpacks into a temporary folder beside the target and renames it when complete, with a marker
file, so a killed extraction is never mistaken for a finished one.

Sizes are bounded (:class:`SizeCaps`): an archive whose members declare more than the cap, or
that would expand more than :data:`MAX_RATIO`-fold, is refused before anything is written; the
bytes actually written are counted too, since declared sizes can lie. A download without a
Content-Length stops at the same cap. Every transport failure is one :class:`DownloadError`.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import ipaddress
import json
import os
import posixpath
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from .errors import (
    ChecksumError,
    DownloadError,
    ImHardError,
    InvalidValueError,
    MissingFileError,
    UnsafeArchiveError,
)
from .files import CHUNK, atomic_path, check_sha256
from .sizes import MiB, format_size, parse_size

#: Marker written inside a finished extraction (its JSON says which archive it came from).
MARKER = ".imhard-extracted.json"
#: Python's zipfile decrypts ZipCrypto at about this rate (measured on one
#: core), ``unzip -P`` ~72 MB/s.
ZIPFILE_CRYPTO_BYTES_PER_S = 2.2e6
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
#: Network read size: small enough that a dropped connection loses little of what arrived.
NET_CHUNK = 1 << 16

#: Environment variable holding the size cap (``--max-size`` of ``imhard build`` sets it too).
MAX_SIZE_ENV = "IMHARD_MAX_SIZE"
#: The cap when a source says nothing about its size: ObjectNet, the largest, is under 200 GB.
DEFAULT_MAX_SIZE = 512 * 1024 ** 3
#: A source's known size times this is its cap: mirrors repack, and sizes are quoted rounded.
SIZE_MARGIN = 2
#: Photos barely compress (JPEG already is), so a dataset archive expands about 1:1; 200:1 is
#: what zeros do, which is what a decompression bomb is made of.
MAX_RATIO = 200
#: Below this much expanded the ratio is not checked: label files and devkits compress well.
RATIO_FLOOR = 64 * 1024 ** 2
#: How often the unzip watcher adds up what unzip wrote so far.
UNZIP_POLL_S = 0.2


@dataclass(frozen=True)
class SizeCaps:
    """How big one source may get: ``total`` bounds an archive's expansion and a download
    without a Content-Length (None: unbounded); ``ratio`` bounds expanded/archive size (None: not
    checked, once a user named the cap); ``why`` says where ``total`` came from."""

    total: int | None = DEFAULT_MAX_SIZE
    ratio: float | None = MAX_RATIO
    why: str = "the default cap"


def parse_max_size(text: str | int) -> int | None:
    """``--max-size`` as bytes (``"16G"``, ``"512M"``; ``"none"`` → unbounded), in the one size
    syntax (:func:`imagenet_hard.sizes.parse_size`), at least 64 MiB."""
    return parse_size(text, option="--max-size", minimum=64 * MiB, none=True,
                      examples="16G or 512M")


def size_caps(known: int | None = None, max_size: str | int | None = None) -> SizeCaps:
    """The caps for a source whose archive holds about ``known`` bytes (None: unknown).

    ``max_size`` (else ``$IMHARD_MAX_SIZE``) replaces both the known-size cap and the ratio
    check: whoever names a size has said how big the archive may really be.
    """
    given = max_size if max_size is not None else (os.environ.get(MAX_SIZE_ENV) or None)
    if given is not None:
        return SizeCaps(parse_max_size(given), None, "set by --max-size or $IMHARD_MAX_SIZE")
    if known:
        return SizeCaps(int(known * SIZE_MARGIN), MAX_RATIO,
                        f"{SIZE_MARGIN}x the source's known size of {format_size(known)}")
    return SizeCaps()


_RAISE_CAP = "pass --max-size (or set $IMHARD_MAX_SIZE) above it"


def say(msg: str) -> None:
    """Notices go to stderr through tqdm so they do not tear a progress bar."""
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


# --------------------------------------------------------------------------------------------
# download


def _parse_url(url: str):
    try:
        return urlparse(url)
    except ValueError as exc:  # "Invalid IPv6 URL"
        raise DownloadError(f"{url!r} is not a valid address ({exc}), so nothing was downloaded; "
                            f"{_ELSEWHERE}") from None


def filename_from_url(url: str) -> str:
    name = posixpath.basename(unquote(_parse_url(url).path))
    if not name or name in {".", ".."}:
        raise DownloadError(f"cannot tell a file name from URL {url!r}; pass a destination file")
    return name


def checksum_record(path: str | os.PathLike) -> Path:
    """``<file>.sha256`` beside a download: the hash a later run verifies against."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def read_checksum_record(path: str | os.PathLike) -> str | None:
    rec = checksum_record(path)
    if not rec.is_file():
        return None
    text = rec.read_text(encoding="utf-8").split()
    return text[0].lower() if text else None


def _write_checksum_record(path: Path, sha256: str) -> None:
    with atomic_path(checksum_record(path)) as tmp:
        tmp.write_text(f"{sha256}  {path.name}\n", encoding="utf-8")


class _Hashes:
    """SHA-256 (and optionally MD5) fed as bytes arrive, so a 100 GB file is read once."""

    def __init__(self, md5: bool):
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        if self.md5 is not None:
            self.md5.update(data)

    def feed_file(self, path: Path) -> None:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                self.update(chunk)


def _file_hashes(path: Path, md5: bool) -> _Hashes:
    h = _Hashes(md5)
    h.feed_file(path)
    return h


def _verify(path: Path, hashes: _Hashes, sha256: str | None, md5: str | None,
            what: str) -> None:
    """Raise ChecksumError naming file, expected and actual hash; the bad bytes are deleted."""
    actual = hashes.sha256.hexdigest()
    bad = None
    if sha256 and actual != sha256.lower():
        bad = ("SHA-256", sha256.lower(), actual)
    elif md5 and hashes.md5 is not None and hashes.md5.hexdigest() != md5.lower():
        bad = ("MD5", md5.lower(), hashes.md5.hexdigest())
    if bad:
        path.unlink(missing_ok=True)
        kind, exp, act = bad
        raise ChecksumError(
            f"{what} {path.name}: {kind} mismatch: expected {exp}, got {act}; the file was "
            f"deleted. Check --sha256, or the mirror given with --url."
        )


def _content_range_total(value: str | None) -> int | None:
    # "bytes 100-199/200" or "bytes */200"
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _content_range_start(value: str | None) -> int | None:
    if not value or not value.startswith("bytes ") or "-" not in value:
        return None
    start = value[6:].split("-", 1)[0].strip()
    return int(start) if start.isdigit() else None


def _http_only(resp, *args, **kwargs):
    """Response hook: a redirect may only lead to another http(s) address (requests would
    otherwise fail on ``file://`` with a traceback, or a custom adapter might follow it)."""
    if resp.is_redirect:
        target = urljoin(resp.url, resp.headers.get("location", ""))
        if urlparse(target).scheme.lower() not in ("http", "https"):
            resp.close()
            raise DownloadError(f"{resp.url} redirects to {target!r}, which is not an http(s) "
                                f"address, so nothing was downloaded; {_ELSEWHERE}")
    return resp


_ELSEWHERE = "pass --url with a mirror, or --path with a copy you already have"

#: Retries of a host that does not answer at all (its name does not resolve, the connection is
#: refused, no route to it): one, for a blip; more would only keep an offline user waiting.
UNREACHABLE_RETRIES = 1
#: Variables that turn network downloads off, as for model weights (``IMHARD_OFFLINE``) and the
#: Hugging Face Hub (``HF_HUB_OFFLINE``); a mirror on this machine (loopback) is still fetched.
OFFLINE_VARS = ("IMHARD_OFFLINE", "HF_HUB_OFFLINE")
_NO_ANSWER = re.compile(r"name resolution|Name or service not known|nodename nor servname|"
                        r"No address associated|getaddrinfo failed|Connection refused|"
                        r"Network is unreachable|No route to host", re.IGNORECASE)


def offline_var() -> str | None:
    """The variable of :data:`OFFLINE_VARS` that turns network downloads off, if one does."""
    return next((v for v in OFFLINE_VARS
                 if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")), None)


def _over_the_network(url: str) -> bool:
    """Whether fetching ``url`` leaves this machine: a host that is not a loopback address (an
    address without a host fails on its own, without the network)."""
    host = _parse_url(url).hostname or ""
    if not host or host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _no_answer(exc: BaseException) -> bool:
    """The host did not answer at all: a name that does not resolve, a refused connection, no
    route (not a connection dropped mid-transfer, which a retry may resume)."""
    seen, e = set(), exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (socket.gaierror, ConnectionRefusedError)) or getattr(
                e, "errno", None) in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return True
        e = e.__cause__ or e.__context__ or getattr(e, "reason", None)
    return bool(_NO_ANSWER.search(str(exc)))


def _too_big(url: str, part: Path, sent: str, caps: SizeCaps) -> DownloadError:
    part.unlink(missing_ok=True)
    return DownloadError(f"{url} {sent}, more than the {format_size(caps.total)} allowed "
                         f"({caps.why}), so the download was stopped and its partial file "
                         f"deleted; if the file really is that big, {_RAISE_CAP}")


def _transfer(session, url: str, part: Path, hashes: _Hashes, timeout: float,
              progress: bool, name: str, caps: SizeCaps) -> _Hashes:
    """One attempt: (re)start or resume into ``part``; return the hashes of the whole file.

    Raises requests exceptions for connection trouble and ``_Retry`` for retryable statuses.
    """
    import requests
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with session.get(url, headers=headers, stream=True, timeout=timeout,
                     allow_redirects=True, hooks={"response": [_http_only]}) as resp:
        if resp.status_code == 416 and offset:
            total = _content_range_total(resp.headers.get("Content-Range"))
            if total == offset:
                return hashes  # the part is already the whole file
            part.unlink()  # the part is longer than the file: it is not this file; start over
            raise _Retry("server refused the resume range (416); restarting", immediate=True)
        if resp.status_code in RETRY_STATUS:
            raise _Retry(f"HTTP {resp.status_code}")
        if resp.status_code >= 400:
            raise DownloadError(f"HTTP {resp.status_code} {resp.reason} for {url}; check the "
                                "address (--url) or your access to it")
        mode = "ab"
        if offset and (resp.status_code != 206
                       or _content_range_start(resp.headers.get("Content-Range")) != offset):
            # The server ignored Range and sends the whole file: restart from zero.
            offset, mode = 0, "wb"
            hashes = _Hashes(hashes.md5 is not None)
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        limit = caps.total
        if limit is not None and total is not None and total > limit:
            raise _too_big(url, part, f"announces {format_size(total)}", caps)
        received = 0
        part.parent.mkdir(parents=True, exist_ok=True)  # only once a server answers with bytes
        with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=name, disable=not progress,
                                         leave=False) as bar:
            for chunk in resp.iter_content(chunk_size=NET_CHUNK):
                if limit is not None and offset + received + len(chunk) > limit:
                    f.close()
                    raise _too_big(url, part, "kept sending without saying how much (no "
                                   "Content-Length)" if total is None else "sent more than it "
                                   "announced", caps)
                f.write(chunk)
                hashes.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if length and length.isdigit() and received < int(length):
            raise requests.ConnectionError(f"connection closed after {received} of {length} bytes")
    return hashes


class _Retry(Exception):
    def __init__(self, msg: str, immediate: bool = False):
        super().__init__(msg)
        self.immediate = immediate


def _describe(exc: Exception) -> str:
    """The useful part of a requests/urllib3 error ("Connection refused", not three wrappers)."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    return text if len(text) <= 200 else text[:200] + "…"


def _resolve_dest(url: str, dest: str | os.PathLike) -> Path:
    dest = Path(dest).expanduser()
    if dest.is_dir() or str(dest).endswith(("/", os.sep)):
        return dest / filename_from_url(url)
    return dest


def _existing_ok(final: Path, sha256: str | None, md5: str | None,
                 notify: Callable[[str], None]) -> bool:
    """A file already at the final name: keep it when its hash is right, else drop it."""
    expected = sha256 or read_checksum_record(final)
    hashes = _file_hashes(final, md5=bool(md5))
    actual = hashes.sha256.hexdigest()
    if expected and actual != expected.lower():
        notify(f"{final.name}: present but its SHA-256 is {actual}, expected {expected}; "
               "downloading it again")
        final.unlink()
        return False
    if md5 and hashes.md5.hexdigest() != md5.lower():
        notify(f"{final.name}: present but its MD5 is {hashes.md5.hexdigest()}, expected {md5}; "
               "downloading it again")
        final.unlink()
        return False
    if not expected:
        _write_checksum_record(final, actual)
    return True


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, *,
             md5: str | None = None, retries: int = 5, backoff: float = 1.0,
             timeout: float = 60.0, progress: bool = True, session=None,
             notify: Callable[[str], None] = say, caps: SizeCaps | None = None) -> Path:
    """Download ``url`` to ``dest`` (a folder or a file path) and return the file's path.

    ``sha256`` (or the recorded ``<file>.sha256`` of an earlier run) is verified; ``md5`` is
    checked too when given (some datasets publish only MD5). A file already present with the
    right hash is not downloaded again. Without any known checksum the computed SHA-256 is
    recorded beside the file and reported through ``notify``. A file bigger than ``caps.total``
    (default: :func:`size_caps`) is stopped and deleted; only http(s) is fetched, redirects too.
    """
    import requests

    caps = caps if caps is not None else size_caps()
    if _parse_url(url).scheme.lower() not in ("http", "https"):
        raise DownloadError(f"{url!r} is not an http(s) address, so nothing was downloaded; "
                            f"{_ELSEWHERE}")
    if sha256 is not None:  # checked before anything is written
        try:
            sha256 = check_sha256(sha256, "--sha256")
        except InvalidValueError as exc:
            raise ChecksumError(str(exc)) from None
    final = _resolve_dest(url, dest)
    if final.is_file() and _existing_ok(final, sha256, md5, notify):
        notify(f"{final.name}: already downloaded and verified ({final})")
        return final
    off = offline_var()
    if off and _over_the_network(url):
        raise DownloadError(f"{url} was not downloaded because network downloads are off "
                            f"({off}=1): pass --path with a copy you already have, or --url "
                            f"with a mirror on this machine (or unset {off} to download)")
    expected = sha256 or read_checksum_record(final)
    part = final.with_name(final.name + ".part")
    resumable = part.exists()  # an earlier run's bytes: kept whatever this run meets
    hashes = _Hashes(md5=bool(md5))
    if part.exists():
        hashes.feed_file(part)  # resume: the hash covers the bytes already on disk
    own_session = session is None
    session = session or requests.Session()
    attempt = 0
    try:
        while True:
            try:
                hashes = _transfer(session, url, part, hashes, timeout, progress, final.name,
                                   caps)
                break
            except requests.exceptions.SSLError as exc:  # retrying cannot fix a certificate
                raise DownloadError(f"downloading {url} failed: {_describe(exc)}; check the "
                                    f"machine's certificates, or {_ELSEWHERE}") from exc
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError, _Retry) as exc:
                attempt += 1
                no_answer = _no_answer(exc)
                if attempt > (min(retries, UNREACHABLE_RETRIES) if no_answer else retries):
                    kept = (f"; the partial file {part} is kept and a rerun resumes it"
                            if part.exists() else "")
                    why = " (the host does not answer: is this machine offline?)" \
                        if no_answer else ""
                    done = attempt - 1
                    raise DownloadError(f"downloading {url} failed after {done} "
                                        f"{'retry' if done == 1 else 'retries'}: "
                                        f"{_describe(exc)}{why}{kept}; {_ELSEWHERE}") from exc
                immediate = isinstance(exc, _Retry) and exc.immediate
                hashes = _Hashes(md5=bool(md5))  # re-read: the attempt may have restarted
                if part.exists():
                    hashes.feed_file(part)
                delay = 0 if immediate else min(backoff * 2 ** (attempt - 1), 60)
                notify(f"{final.name}: {_describe(exc)}; retry {attempt}/{retries} in {delay:.0f} s")
                time.sleep(delay)
            except requests.RequestException as exc:
                # Bad or unsupported address, redirect loop, undecodable body: retrying is futile,
                # and what this run wrote would not resume.
                if not resumable:
                    part.unlink(missing_ok=True)
                raise DownloadError(f"downloading {url} failed: {_describe(exc)}; "
                                    f"{_ELSEWHERE}") from exc
    finally:
        if own_session:
            session.close()
    _verify(part, hashes, expected, md5, "download")
    os.replace(part, final)
    actual = hashes.sha256.hexdigest()
    _write_checksum_record(final, actual)
    if not expected and not md5:
        notify(f"{final.name}: no published SHA-256; computed {actual}, recorded in "
               f"{checksum_record(final).name} so later runs verify against it")
    return final


def verify_file(path: str | os.PathLike, sha256: str | None = None,
                md5: str | None = None) -> str:
    """Check a file the user supplied (``--path``); return its SHA-256. Never deletes it."""
    path = Path(path)
    hashes = _file_hashes(path, md5=bool(md5))
    actual = hashes.sha256.hexdigest()
    if sha256 and actual != sha256.lower():
        raise ChecksumError(f"{path}: SHA-256 mismatch: expected {sha256.lower()}, got {actual}")
    if md5 and hashes.md5.hexdigest() != md5.lower():
        raise ChecksumError(f"{path}: MD5 mismatch: expected {md5.lower()}, "
                            f"got {hashes.md5.hexdigest()}")
    return actual


# --------------------------------------------------------------------------------------------
# extraction


def _is_absolute(path: str) -> bool:
    return path.startswith("/") or re.match(r"^[A-Za-z]:/", path) is not None


def _check_member_path(name: str, archive: Path) -> None:
    """UnsafeArchiveError if the member's path leaves the target."""
    clean = name.replace("\\", "/")
    if _is_absolute(clean):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path; "
                                 "refusing to extract anything from this archive")
    norm = posixpath.normpath(clean)
    if norm == ".." or norm.startswith("../"):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} escapes the target folder "
                                 "with '..'; refusing to extract anything from this archive")


def _refuse_link(archive: Path, member: str, what: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive.name}: member {member!r} is {what}; the dataset archives imhard reads hold no "
        "links or special files, so nothing was extracted (check where this archive came from)")


class _Budget:
    """What an extraction may write: members' declared sizes are added up before anything is
    written (refused past the cap or the ratio), and the bytes written are counted after,
    because a forged archive can declare less than it holds."""

    def __init__(self, archive: Path, caps: SizeCaps):
        self.archive, self.caps = archive, caps
        self.size = max(archive.stat().st_size, 1)
        self.declared = 0
        self.written = 0

    def declare(self, n: int) -> None:
        self.declared += n
        caps, name = self.caps, self.archive.name
        if caps.total is not None and self.declared > caps.total:
            raise UnsafeArchiveError(
                f"{name} declares more than {format_size(caps.total)} of files, the most allowed "
                f"({caps.why}), so nothing was extracted; if the archive really is that big, "
                f"{_RAISE_CAP}")
        if (caps.ratio is not None and self.declared > RATIO_FLOOR
                and self.declared > caps.ratio * self.size):
            raise UnsafeArchiveError(
                f"{name} would expand from {format_size(self.size)} to at least "
                f"{format_size(self.declared)}, "
                f"more than {caps.ratio:.0f}-fold where dataset photos barely compress (a "
                f"decompression bomb?), so nothing was extracted; if you trust it, pass --max-size "
                "(or set $IMHARD_MAX_SIZE) to the size it should expand to")

    def wrote(self, n: int, member: str) -> None:
        self.written += n
        if self.written > self.declared:
            raise self.lie(member)

    def lie(self, member: str | None = None) -> UnsafeArchiveError:
        which = f"member {member!r}" if member else "a member"
        return UnsafeArchiveError(
            f"{self.archive.name}: {which} does not hold the size (and CRC-32) the archive "
            "declares for it, so the extraction was stopped and removed (a forged or damaged "
            "archive); download it again from a trusted address")


def _validate_tar(tf: tarfile.TarFile, archive: Path, budget: _Budget) -> list[tarfile.TarInfo]:
    # Member by member rather than getmembers(): a bomb is refused at its first header, before
    # the whole compressed stream has been inflated to find the next one.
    for m in tf:
        _check_member_path(m.name, archive)
        if m.issym():
            raise _refuse_link(archive, m.name, f"a symbolic link to {m.linkname!r}")
        if m.islnk():
            raise _refuse_link(archive, m.name, f"a hard link to {m.linkname!r}")
        if not (m.isfile() or m.isdir()):
            raise _refuse_link(archive, m.name, "a device or FIFO")
        if m.isfile():
            budget.declare(m.size)
    return tf.getmembers()


def _validate_zip(zf: zipfile.ZipFile, archive: Path, budget: _Budget) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    for info in infos:
        _check_member_path(info.filename, archive)
        # unzip restores the Unix mode of members made on Unix, VMS, Atari, BeOS and AtheOS
        # alike, so the mode is read whatever "made by" system the member names.
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise _refuse_link(archive, info.filename, "a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _refuse_link(archive, info.filename, "a device, FIFO or socket")
        budget.declare(info.file_size)
    return infos


def _refuse_links_on_disk(tmp: Path, archive: Path) -> None:
    """After extraction: no entry of ``tmp`` may be a link or special file, whatever the
    extractor made of the members (a second line behind the member checks)."""
    stack = [tmp]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_symlink() or not (e.is_dir() or e.is_file()):
                    member = Path(e.path).relative_to(tmp).as_posix()
                    raise _refuse_link(archive, member, "a link or special file on disk after "
                                       "extraction")
                if e.is_dir():
                    stack.append(Path(e.path))


def archive_kind(path: str | os.PathLike) -> str:
    """``"zip"`` or ``"tar"`` (any compression tarfile reads), else an error."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"archive {path} does not exist")
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise ImHardError(f"{path} is neither a tar nor a zip archive; pass the dataset's archive "
                      "or an extracted folder")


def is_extracted(target: str | os.PathLike, archive: str | os.PathLike | None = None) -> bool:
    """True when ``target`` holds a finished extraction (of ``archive``, when given)."""
    marker = Path(target) / MARKER
    if not marker.is_file():
        return False
    if archive is None:
        return True
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except ValueError:
        return False
    archive = Path(archive)
    if info.get("archive") != archive.name:
        return False
    # The download may have been deleted after extraction to save space: the name suffices then.
    return not archive.is_file() or info.get("size") == archive.stat().st_size


def _extract_tar(archive: Path, tmp: Path, progress: bool, caps: SizeCaps) -> int:
    from tqdm import tqdm

    budget = _Budget(archive, caps)
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = _validate_tar(tf, archive, budget)  # all checked before any write
            for m in tqdm(members, desc=f"extracting {archive.name}", unit="file",
                          disable=not progress, leave=False):
                try:
                    tf.extract(m, tmp, filter="data")
                except tarfile.FilterError as exc:
                    raise UnsafeArchiveError(f"{archive.name}: member {m.name!r}: {exc}") from exc
                if m.isfile():  # tarfile copies exactly m.size bytes; the file says what it did
                    budget.wrote(os.lstat(tmp / m.name).st_size, m.name)
            return len(members)
    except (tarfile.ReadError, EOFError, OSError) as exc:
        if isinstance(exc, ImHardError):
            raise
        raise ImHardError(f"{archive} is damaged or truncated ({exc}); delete it and download "
                          "it again") from exc


def _extract_zip(archive: Path, tmp: Path, password: str | None, progress: bool,
                 notify: Callable[[str], None], caps: SizeCaps) -> int:
    from tqdm import tqdm

    pwd = password.encode() if password else None
    budget = _Budget(archive, caps)
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = _validate_zip(zf, archive, budget)  # names are not encrypted: check first
            encrypted = any(i.flag_bits & 0x1 for i in infos)
            if encrypted and not pwd:
                raise ImHardError(f"{archive.name} is password protected and no password is known")
            unzip = shutil.which("unzip") if encrypted else None
            if unzip:
                _run_unzip(unzip, archive, tmp, password, infos, budget)
                return len(infos)
            if encrypted:
                size = sum(i.compress_size for i in infos)
                hours = size / ZIPFILE_CRYPTO_BYTES_PER_S / 3600
                notify(f"warning: `unzip` is not on PATH; decrypting {format_size(size)} with "
                       f"Python's zipfile at ~2.2 MB/s takes about {hours:.1f} h (unzip is ~33x "
                       "faster: apt-get install unzip)")
            for info in tqdm(infos, desc=f"extracting {archive.name}", unit="file",
                             disable=not progress, leave=False):
                _extract_zip_member(zf, info, tmp, pwd, budget)
            return len(infos)
    except RuntimeError as exc:  # zipfile: "Bad password for file ..."
        raise ImHardError(f"{archive.name}: {exc}; check the password") from exc
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ImHardError(f"{archive} is damaged or truncated ({exc}); delete it and download "
                          "it again") from exc


def _zip_dest(tmp: Path, name: str) -> Path:
    # zipfile's own mapping (ZipFile._extract_member): empty, "." and ".." parts are dropped.
    return tmp.joinpath(*(x for x in name.split("/") if x not in ("", ".", "..")))


def _extract_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, tmp: Path,
                        pwd: bytes | None, budget: _Budget) -> None:
    dest = _zip_dest(tmp, info.filename)
    if info.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    # zipfile stops reading at the declared size and says nothing of what follows; asking for
    # one byte more shows a member that inflates beyond it (its CRC-32 check then fails too).
    probe = copy.copy(info)
    probe.file_size = info.file_size + 1
    n = 0
    try:
        with zf.open(probe, pwd=pwd) as src, open(dest, "wb") as out:
            while chunk := src.read(CHUNK):
                n += len(chunk)
                if n > info.file_size:
                    raise budget.lie(info.filename)
                budget.wrote(len(chunk), info.filename)
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise budget.lie(info.filename) from exc
    if n != info.file_size:
        raise budget.lie(info.filename)


def _tree_bytes(folder: Path) -> int:
    total, stack = 0, [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
                else:
                    total += e.stat(follow_symlinks=False).st_size
    return total


def _run_unzip(unzip: str, archive: Path, tmp: Path, password: str | None,
               infos: list[zipfile.ZipInfo], budget: _Budget) -> None:
    """``unzip`` inflates a member to its end whatever size it declares, so it runs with no file
    allowed one byte past the largest declared member (RLIMIT_FSIZE: unzip then stops on a
    write error) and is killed once what it wrote passes the declared total; every file is
    then checked against its declared size."""
    import resource

    cmd = [unzip, "-q", "-o"]
    if password:
        cmd += ["-P", password]
    cmd += [str(archive), "-d", str(tmp)]
    largest = max((i.file_size for i in infos), default=0)

    def limit_file_size() -> None:
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        soft = largest + 1 if hard == resource.RLIM_INFINITY else min(largest + 1, hard)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty unzip cannot block
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                preexec_fn=limit_file_size)
        try:
            poll = UNZIP_POLL_S
            while True:
                try:
                    proc.wait(timeout=poll)
                    break
                except subprocess.TimeoutExpired:
                    started = time.monotonic()
                    if _tree_bytes(tmp) > budget.declared:
                        raise budget.lie() from None
                    # Scanning 50,000 files takes a while: never spend more than a fifth on it.
                    poll = max(UNZIP_POLL_S, 5 * (time.monotonic() - started))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log.seek(0)
        output = log.read(1 << 20).decode(errors="replace")
    sizes = [(info, _zip_dest(tmp, info.filename)) for info in infos if not info.is_dir()]
    sizes = [(info, dest.stat().st_size) for info, dest in sizes if dest.is_file()]
    if proc.returncode == -signal.SIGXFSZ:
        raise budget.lie()
    for info, size in sizes:  # before unzip's own error: a lie reads as a full disk there
        if size > info.file_size:
            raise budget.lie(info.filename)
    if proc.returncode not in (0, 1):  # 1 = warnings only
        tail = output.strip().splitlines()[-3:]
        raise ImHardError(f"unzip failed on {archive.name} (exit {proc.returncode}): "
                          f"{' '.join(tail)}; check the password and the archive")
    for info, size in sizes:
        budget.wrote(size, info.filename)
        if size != info.file_size:
            raise budget.lie(info.filename)


def extract(archive: str | os.PathLike, target: str | os.PathLike, password: str | None = None,
            *, progress: bool = False, force: bool = False,
            notify: Callable[[str], None] = say, caps: SizeCaps | None = None) -> Path:
    """Safely extract ``archive`` into ``target`` and return ``target``.

    Skips the work when ``target`` already holds a finished extraction of the same archive
    (unless ``force``). Raises UnsafeArchiveError, before writing anything, when a member would
    land outside ``target`` or is a link, or when the members declare more than ``caps`` allow
    (default: :func:`size_caps`); the temporary folder is removed when a link shows up on disk
    all the same, or a member writes more than it declared.
    """
    caps = caps if caps is not None else size_caps()
    archive, target = Path(archive), Path(target)
    kind = archive_kind(archive)
    if not force and is_extracted(target, archive):
        return target
    if target.is_symlink():
        target.unlink()  # a link to a --path folder used before: dropping it deletes nothing
    if target.exists() and not (target / MARKER).is_file():
        raise ImHardError(f"{target} exists but is not an extraction made by imhard; move it "
                          "away and rerun")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    if tmp.exists():  # left by a killed run
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        if kind == "tar":
            n = _extract_tar(archive, tmp, progress, caps)
        else:
            n = _extract_zip(archive, tmp, password, progress, notify, caps)
        _refuse_links_on_disk(tmp, archive)
        (tmp / MARKER).write_text(json.dumps({"archive": archive.name,
                                              "size": archive.stat().st_size, "members": n}),
                                  encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


__all__ = ["MARKER", "SizeCaps", "archive_kind", "checksum_record", "download", "extract",
           "filename_from_url", "is_extracted", "parse_max_size", "read_checksum_record", "say",
           "size_caps", "verify_file"]
