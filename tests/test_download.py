"""The download engine over real HTTP (loopback) and safe extraction of real archives."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zipfile

import pytest
from source_archives import image_bytes, make_encrypted_zip, make_tar, make_zip

from imagenet_hard import download as dl
from imagenet_hard.errors import ChecksumError, DownloadError, ImHardError, UnsafeArchiveError

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)  # > 3 chunks, so a cut lands mid-transfer
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def fetch(url, dest, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("backoff", 0.0)
    msgs = []
    path = dl.download(url, dest, notify=msgs.append, **kw)
    return path, msgs


def test_download_verifies_and_records_hash(http_server, tmp_path):
    url = http_server.add("data.bin", PAYLOAD)
    path, _ = fetch(url, tmp_path, sha256=SHA)
    assert path == tmp_path / "data.bin" and path.read_bytes() == PAYLOAD
    assert dl.read_checksum_record(path) == SHA
    assert not (tmp_path / "data.bin.part").exists()


def test_cut_transfer_resumes_with_range_and_right_hash(http_server, tmp_path):
    url = http_server.add("data.bin", PAYLOAD)
    http_server.cut_once.add("/data.bin")
    path, msgs = fetch(url, tmp_path, sha256=SHA)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA
    ranges = http_server.range_requests("data.bin")
    assert len(ranges) == 1 and ranges[0].startswith("bytes=")
    assert int(ranges[0][6:-1]) > 0  # resumed from the bytes already on disk
    assert any("retry 1/" in m for m in msgs)


def test_server_ignoring_range_restarts_cleanly(http_server, tmp_path):
    url = http_server.add("data.bin", PAYLOAD)
    http_server.cut_once.add("/data.bin")
    http_server.ignore_range = True
    path, _ = fetch(url, tmp_path, sha256=SHA)
    assert path.read_bytes() == PAYLOAD


def test_part_already_complete_gets_416_and_finishes(http_server, tmp_path):
    url = http_server.add("data.bin", PAYLOAD)
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    path, _ = fetch(url, tmp_path, sha256=SHA)
    assert path.read_bytes() == PAYLOAD
    assert http_server.range_requests("data.bin") == [f"bytes={len(PAYLOAD)}-"]


def test_retries_5xx_then_succeeds(http_server, tmp_path):
    url = http_server.add("data.bin", PAYLOAD)
    http_server.fail_next["/data.bin"] = 2
    path, msgs = fetch(url, tmp_path, sha256=SHA)
    assert path.read_bytes() == PAYLOAD
    assert sum("HTTP 503" in m for m in msgs) == 2


def test_gives_up_after_retries_and_keeps_nothing_final(http_server, tmp_path):
    url = http_server.add("data.bin", PAYLOAD)
    http_server.fail_next["/data.bin"] = 10
    with pytest.raises(DownloadError, match="failed after 2 retries"):
        fetch(url, tmp_path, sha256=SHA, retries=2)
    assert not (tmp_path / "data.bin").exists()


def test_404_is_not_retried(http_server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(f"{http_server.base}/missing.tar", tmp_path)
    assert len(http_server.requests) == 1


def test_wrong_hash_names_file_expected_actual_and_deletes(http_server, tmp_path):
    url = http_server.add("data.bin", PAYLOAD)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        fetch(url, tmp_path, sha256=wrong)
    msg = str(err.value)
    assert "data.bin" in msg and wrong in msg and SHA in msg
    assert sorted(os.listdir(tmp_path)) == []


def test_md5_checked_when_that_is_all_that_is_published(http_server, tmp_path):
    url = http_server.add("data.bin", PAYLOAD)
    with pytest.raises(ChecksumError, match="MD5 mismatch"):
        fetch(url, tmp_path, md5="0" * 32)
    path, _ = fetch(url, tmp_path, md5=hashlib.md5(PAYLOAD).hexdigest())
    assert path.read_bytes() == PAYLOAD


def test_present_file_with_right_hash_is_not_downloaded_again(http_server, tmp_path):
    url = http_server.add("data.bin", PAYLOAD)
    fetch(url, tmp_path, sha256=SHA)
    n = len(http_server.requests)
    _, msgs = fetch(url, tmp_path, sha256=SHA)
    assert len(http_server.requests) == n
    assert any("already downloaded" in m for m in msgs)


def test_unknown_checksum_is_recorded_and_enforced_later(http_server, tmp_path):
    url = http_server.add("data.bin", PAYLOAD)
    path, msgs = fetch(url, tmp_path)
    assert any("no published SHA-256" in m and SHA in m for m in msgs)
    assert dl.read_checksum_record(path) == SHA
    path.write_bytes(b"corrupted")  # a later run notices and fetches the right bytes again
    path, msgs = fetch(url, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert any("downloading it again" in m for m in msgs)
    http_server.files["/data.bin"] = b"a different file at the same address"
    path.unlink()
    with pytest.raises(ChecksumError, match=SHA):
        fetch(url, tmp_path)
    assert not path.exists()


def test_bad_sha256_argument_is_rejected(tmp_path):
    with pytest.raises(ChecksumError, match="64 hex"):
        dl.download("http://127.0.0.1:9/x.tar", tmp_path, sha256="abc")


@pytest.mark.parametrize("bad", ["abc", "g" * 64, "a" * 63 + " b", ""])
def test_malformed_sha256_writes_nothing(tmp_path, bad):
    dest = tmp_path / "downloads" / "sub"
    with pytest.raises(ChecksumError, match="--sha256 must be 64 hex digits"):
        dl.download("http://127.0.0.1:9/x.tar", dest / "x.tar", sha256=bad)
    assert list(tmp_path.iterdir()) == []   # no downloads/ folder, no .part, no record


# --------------------------------------------------------------------------------------------
# extraction


MEMBERS = {"top/a/one.jpg": image_bytes(1), "top/b/two.jpg": image_bytes(2)}


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip"])
def test_extract_formats_with_marker_and_skip(tmp_path, kind):
    data = make_zip(MEMBERS) if kind == "zip" else make_tar(MEMBERS, gz=kind == "tar.gz")
    archive = tmp_path / f"src.{kind}"
    archive.write_bytes(data)
    target = dl.extract(archive, tmp_path / "out")
    assert (target / "top/a/one.jpg").read_bytes() == MEMBERS["top/a/one.jpg"]
    assert dl.is_extracted(target, archive)
    (target / "top/b/two.jpg").unlink()
    dl.extract(archive, target)  # finished extraction of the same archive: nothing is redone
    assert not (target / "top/b/two.jpg").exists()
    dl.extract(archive, target, force=True)
    assert (target / "top/b/two.jpg").exists()
    assert not list(tmp_path.glob(".out.partial"))


def test_killed_extraction_is_not_mistaken_for_finished(tmp_path):
    archive = tmp_path / "src.tar"
    archive.write_bytes(make_tar(MEMBERS))
    partial = tmp_path / ".out.partial"
    (partial / "top").mkdir(parents=True)  # what a killed run leaves
    assert not dl.is_extracted(tmp_path / "out", archive)
    dl.extract(archive, tmp_path / "out")
    assert not partial.exists() and dl.is_extracted(tmp_path / "out", archive)


def _tar_with(bad: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        good = tarfile.TarInfo("top/a/good.txt")
        good.size = 4
        tf.addfile(good, io.BytesIO(b"good"))  # a safe member first: still nothing is written
        if bad.isreg():
            bad.size = len(data)
            tf.addfile(bad, io.BytesIO(data))
        else:
            tf.addfile(bad)
    return buf.getvalue()


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize("bad, member", [
    (tarfile.TarInfo("../escape.txt"), "../escape.txt"),
    (tarfile.TarInfo("top/../../escape.txt"), "top/../../escape.txt"),
    (tarfile.TarInfo("/tmp/imhard-abs-escape.txt"), "/tmp/imhard-abs-escape.txt"),
    (_link("top/link", "../../outside"), "top/link"),
    (_link("top/abs", "/etc/passwd"), "top/abs"),
    (_link("top/hard", "../outside.txt", tarfile.LNKTYPE), "top/hard"),
])
def test_tar_slip_is_refused_before_writing(tmp_path, bad, member):
    archive = tmp_path / "evil.tar"
    archive.write_bytes(_tar_with(bad))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(UnsafeArchiveError) as err:
        dl.extract(archive, work / "out")
    assert repr(member) in str(err.value)
    assert os.listdir(work) == []  # neither the target nor its temporary folder
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "outside").exists()
    assert not os.path.exists("/tmp/imhard-abs-escape.txt")


@pytest.mark.parametrize("name", ["../escape.txt", "top/../../escape.txt", "/abs/escape.txt"])
def test_zip_slip_is_refused_before_writing(tmp_path, name):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(make_zip({"top/a/good.txt": b"good", name: b"x"}))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(UnsafeArchiveError, match="escape"):
        dl.extract(archive, work / "out")
    assert os.listdir(work) == []
    assert not (tmp_path / "escape.txt").exists()


def test_zip_symlink_pointing_outside_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("top/a/good.txt", b"good")
        info = zipfile.ZipInfo("top/link")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../../outside")
    archive = tmp_path / "evil.zip"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError, match="top/link"):
        dl.extract(archive, tmp_path / "work" / "out")
    assert not (tmp_path / "work" / "out").exists()


@pytest.mark.parametrize("with_unzip", [True, False])
def test_password_zip_with_and_without_unzip(tmp_path, monkeypatch, with_unzip):
    if with_unzip and dl.shutil.which("unzip") is None:
        pytest.skip("unzip is not installed on this machine")
    if not with_unzip:
        monkeypatch.setattr(dl.shutil, "which", lambda name: None)
    archive = tmp_path / "secret.zip"
    archive.write_bytes(make_encrypted_zip(MEMBERS, "objectnetisatestset"))
    msgs = []
    target = dl.extract(archive, tmp_path / "out", password="objectnetisatestset",
                        notify=msgs.append)
    assert (target / "top/b/two.jpg").read_bytes() == MEMBERS["top/b/two.jpg"]
    warned = [m for m in msgs if "unzip" in m and "MB/s" in m and " h " in m]
    assert bool(warned) is not with_unzip


@pytest.mark.parametrize("with_unzip", [True, False])
def test_password_zip_wrong_password_fails_clearly(tmp_path, monkeypatch, with_unzip):
    if with_unzip and dl.shutil.which("unzip") is None:
        pytest.skip("unzip is not installed on this machine")
    if not with_unzip:
        monkeypatch.setattr(dl.shutil, "which", lambda name: None)
    archive = tmp_path / "secret.zip"
    archive.write_bytes(make_encrypted_zip(MEMBERS, "right"))
    with pytest.raises(ImHardError, match="password"):
        dl.extract(archive, tmp_path / "out", password="wrong", notify=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_password_zip_names_are_checked_too(tmp_path):
    archive = tmp_path / "secret.zip"
    archive.write_bytes(make_encrypted_zip({"ok.txt": b"a", "../escape.txt": b"b"}, "pw"))
    with pytest.raises(UnsafeArchiveError, match="escape"):
        dl.extract(archive, tmp_path / "out", password="pw")
    assert not (tmp_path / "escape.txt").exists()


def test_damaged_archive_says_so(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(make_tar(MEMBERS, gz=True)[:200])
    with pytest.raises(ImHardError, match="damaged|neither"):
        dl.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
