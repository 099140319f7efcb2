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
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from .errors import (
    ChecksumError,
    DownloadError,
    ImHardError,
    InvalidValueError,
    MissingFileError,
    UnsafeArchiveError,
)
from .files import CHUNK, atomic_path, check_sha256

#: Marker written inside a finished extraction (its JSON says which archive it came from).
MARKER = ".imhard-extracted.json"
#: Python's zipfile decrypts ZipCrypto at about this rate here (DESIGN §4), ``unzip -P`` ~72 MB/s.
ZIPFILE_CRYPTO_BYTES_PER_S = 2.2e6
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
#: Network read size: small enough that a dropped connection loses little of what arrived.
NET_CHUNK = 1 << 16


def say(msg: str) -> None:
    """Notices go to stderr through tqdm so they do not tear a progress bar."""
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


# --------------------------------------------------------------------------------------------
# download


def filename_from_url(url: str) -> str:
    name = posixpath.basename(unquote(urlparse(url).path))
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


def _transfer(session, url: str, part: Path, hashes: _Hashes, timeout: float,
              progress: bool, name: str) -> _Hashes:
    """One attempt: (re)start or resume into ``part``; return the hashes of the whole file.

    Raises requests exceptions for connection trouble and ``_Retry`` for retryable statuses.
    """
    import requests
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with session.get(url, headers=headers, stream=True, timeout=timeout,
                     allow_redirects=True) as resp:
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
        received = 0
        part.parent.mkdir(parents=True, exist_ok=True)  # only once a server answers with bytes
        with open(part, mode) as f, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                         unit_divisor=1024, desc=name, disable=not progress,
                                         leave=False) as bar:
            for chunk in resp.iter_content(chunk_size=NET_CHUNK):
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
             notify: Callable[[str], None] = say) -> Path:
    """Download ``url`` to ``dest`` (a folder or a file path) and return the file's path.

    ``sha256`` (or the recorded ``<file>.sha256`` of an earlier run) is verified; ``md5`` is
    checked too when given (some datasets publish only MD5). A file already present with the
    right hash is not downloaded again. Without any known checksum the computed SHA-256 is
    recorded beside the file and reported through ``notify``.
    """
    import requests

    if sha256 is not None:  # checked before anything is written
        try:
            sha256 = check_sha256(sha256, "--sha256")
        except InvalidValueError as exc:
            raise ChecksumError(str(exc)) from None
    final = _resolve_dest(url, dest)
    if final.is_file() and _existing_ok(final, sha256, md5, notify):
        notify(f"{final.name}: already downloaded and verified ({final})")
        return final
    expected = sha256 or read_checksum_record(final)
    part = final.with_name(final.name + ".part")
    hashes = _Hashes(md5=bool(md5))
    if part.exists():
        hashes.feed_file(part)  # resume: the hash covers the bytes already on disk
    own_session = session is None
    session = session or requests.Session()
    attempt = 0
    try:
        while True:
            try:
                hashes = _transfer(session, url, part, hashes, timeout, progress, final.name)
                break
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError, _Retry) as exc:
                attempt += 1
                if attempt > retries:
                    kept = (f"; the partial file {part} is kept and a rerun resumes it"
                            if part.exists() else "")
                    raise DownloadError(f"downloading {url} failed after {retries} retries: "
                                        f"{_describe(exc)}{kept}") from exc
                immediate = isinstance(exc, _Retry) and exc.immediate
                hashes = _Hashes(md5=bool(md5))  # re-read: the attempt may have restarted
                if part.exists():
                    hashes.feed_file(part)
                delay = 0 if immediate else min(backoff * 2 ** (attempt - 1), 60)
                notify(f"{final.name}: {_describe(exc)}; retry {attempt}/{retries} in {delay:.0f} s")
                time.sleep(delay)
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


def _validate_tar(tf: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    members = tf.getmembers()
    for m in members:
        _check_member_path(m.name, archive)
        if m.issym():
            raise _refuse_link(archive, m.name, f"a symbolic link to {m.linkname!r}")
        if m.islnk():
            raise _refuse_link(archive, m.name, f"a hard link to {m.linkname!r}")
        if not (m.isfile() or m.isdir()):
            raise _refuse_link(archive, m.name, "a device or FIFO")
    return members


def _validate_zip(zf: zipfile.ZipFile, archive: Path) -> list[zipfile.ZipInfo]:
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


def _extract_tar(archive: Path, tmp: Path, progress: bool) -> int:
    from tqdm import tqdm

    try:
        with tarfile.open(archive, "r:*") as tf:
            members = _validate_tar(tf, archive)  # every name is checked before any write
            for m in tqdm(members, desc=f"extracting {archive.name}", unit="file",
                          disable=not progress, leave=False):
                try:
                    tf.extract(m, tmp, filter="data")
                except tarfile.FilterError as exc:
                    raise UnsafeArchiveError(f"{archive.name}: member {m.name!r}: {exc}") from exc
            return len(members)
    except (tarfile.ReadError, EOFError, OSError) as exc:
        if isinstance(exc, ImHardError):
            raise
        raise ImHardError(f"{archive} is damaged or truncated ({exc}); delete it and download "
                          "it again") from exc


def _extract_zip(archive: Path, tmp: Path, password: str | None, progress: bool,
                 notify: Callable[[str], None]) -> int:
    from tqdm import tqdm

    pwd = password.encode() if password else None
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = _validate_zip(zf, archive)  # names are not encrypted: check them all first
            encrypted = any(i.flag_bits & 0x1 for i in infos)
            if encrypted and not pwd:
                raise ImHardError(f"{archive.name} is password protected and no password is known")
            unzip = shutil.which("unzip") if encrypted else None
            if unzip:
                _run_unzip(unzip, archive, tmp, password)
                return len(infos)
            if encrypted:
                size = sum(i.compress_size for i in infos)
                hours = size / ZIPFILE_CRYPTO_BYTES_PER_S / 3600
                notify(f"warning: `unzip` is not on PATH; decrypting {size / 1e9:.1f} GB with "
                       f"Python's zipfile at ~2.2 MB/s takes about {hours:.1f} h (unzip is ~33x "
                       "faster: apt-get install unzip)")
            for info in tqdm(infos, desc=f"extracting {archive.name}", unit="file",
                             disable=not progress, leave=False):
                zf.extract(info, tmp, pwd=pwd)
            return len(infos)
    except RuntimeError as exc:  # zipfile: "Bad password for file ..."
        raise ImHardError(f"{archive.name}: {exc}; check the password") from exc
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ImHardError(f"{archive} is damaged or truncated ({exc}); delete it and download "
                          "it again") from exc


def _run_unzip(unzip: str, archive: Path, tmp: Path, password: str | None) -> None:
    cmd = [unzip, "-q", "-o"]
    if password:
        cmd += ["-P", password]
    cmd += [str(archive), "-d", str(tmp)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode not in (0, 1):  # 1 = warnings only
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ImHardError(f"unzip failed on {archive.name} (exit {proc.returncode}): "
                          f"{' '.join(tail)}; check the password and the archive")


def extract(archive: str | os.PathLike, target: str | os.PathLike, password: str | None = None,
            *, progress: bool = False, force: bool = False,
            notify: Callable[[str], None] = say) -> Path:
    """Safely extract ``archive`` into ``target`` and return ``target``.

    Skips the work when ``target`` already holds a finished extraction of the same archive
    (unless ``force``). Raises UnsafeArchiveError, before writing anything, when a member would
    land outside ``target`` or is a link; the temporary folder is removed when a link shows up
    on disk all the same.
    """
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
            n = _extract_tar(archive, tmp, progress)
        else:
            n = _extract_zip(archive, tmp, password, progress, notify)
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


__all__ = ["MARKER", "archive_kind", "checksum_record", "download", "extract", "filename_from_url",
           "is_extracted", "read_checksum_record", "say", "verify_file"]
