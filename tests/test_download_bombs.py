"""Archives and downloads are bounded: bombs, lying members, endless streams and odd transports
each end in one sentence, with nothing big written (issue 19, hole 5).

Bombs are made of compressed zeros without ever holding or writing their expanded bytes: a
deflated MiB of zeros, cut loose from what precedes it by a full flush, is repeated.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from source_archives import image_bytes, make_encrypted_zip, make_tar, make_zip

from imagenet_hard import download as dl
from imagenet_hard.cli import main
from imagenet_hard.errors import DownloadError, ImHardError, UnsafeArchiveError

MIB = 1 << 20
ZERO = bytes(MIB)


def deflated_zeros(mib: int) -> tuple[bytes, int]:
    """Raw deflate of ``mib`` MiB of zeros (about 1 KB a MiB) and the CRC-32 of those zeros."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(ZERO) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(ZERO, crc)
    return piece * mib + c.flush(), crc


def zip_of(members: list[tuple[str, bytes, int, int]], flags: int = 0) -> bytes:
    """A deflated zip from (name, raw deflate data, CRC-32, declared size) — sizes as given."""
    out, central = bytearray(), bytearray()
    for name, data, crc, size in members:
        raw, offset = name.encode(), len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 8, 0, 0x5021, crc, len(data),
                           size, len(raw), 0) + raw + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 3 << 8 | 20, 20, flags, 8, 0,
                               0x5021, crc, len(data), size, len(raw), 0, 0, 0, 0,
                               0o100644 << 16, offset) + raw
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                      len(out), 0)
    return bytes(out + central + end)


def tar_gz_bomb(mib: int) -> bytes:
    """A tar.gz of one ``mib``-MiB member of zeros: gzip members may follow one another."""
    info = tarfile.TarInfo("top/zeros.bin")
    info.size, info.mtime = mib * MIB, 1_600_000_000
    one = gzip.compress(ZERO, 9)
    return gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)) + one * mib + gzip.compress(
        bytes(1024))


def _nothing_extracted(tmp_path) -> bool:
    return not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()


# --------------------------------------------------------------------------------------------
# archives


@pytest.mark.parametrize("encrypted", [False, True])
def test_zip_bomb_is_refused_before_writing(tmp_path, encrypted):
    data, crc = deflated_zeros(1024)  # 1 MB that declares (and holds) 1 GiB
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(zip_of([("top/zeros.bin", data, crc, 1024 * MIB)], flags=int(encrypted)))
    assert archive.stat().st_size < 2 * MIB
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.zip would expand from .* to at least "
                       r"1 GiB.*200-fold.*nothing was extracted.*--max-size") as err:
        dl.extract(archive, tmp_path / "out", password="pw" if encrypted else None)
    assert "\n" not in str(err.value)
    assert _nothing_extracted(tmp_path)


def test_tar_gz_bomb_is_refused_at_its_first_header(tmp_path):
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(tar_gz_bomb(1024))
    assert archive.stat().st_size < 2 * MIB
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.tar\.gz would expand .* 1 GiB.*"
                       "nothing was extracted"):
        dl.extract(archive, tmp_path / "out")
    assert _nothing_extracted(tmp_path)


def test_declared_total_beyond_the_cap_is_refused(tmp_path, monkeypatch):
    # 65 members of 1 MiB: 1:1 like photos, so only the total (64M, from the environment) stops it.
    members = {f"top/{i:02d}.bin": bytes(MIB) for i in range(65)}
    archive = tmp_path / "big.tar"
    archive.write_bytes(make_tar(members))
    monkeypatch.setenv(dl.MAX_SIZE_ENV, "64M")
    with pytest.raises(UnsafeArchiveError, match=r"big\.tar declares more than 64 MiB of files, "
                       r"the most allowed \(set by --max-size"):
        dl.extract(archive, tmp_path / "out")
    assert _nothing_extracted(tmp_path)


def test_caps_come_from_the_source_else_a_default_and_a_named_size_replaces_the_ratio(
        monkeypatch):
    monkeypatch.delenv(dl.MAX_SIZE_ENV, raising=False)
    assert dl.size_caps(690_000_000) == dl.SizeCaps(1_380_000_000, dl.MAX_RATIO,
                                                    "2x the source's known size of 658 MiB")
    assert dl.size_caps() == dl.SizeCaps(512 * 1024 ** 3, 200, "the default cap")
    assert dl.size_caps(690_000_000, "16G").total == 16 * 1024 ** 3
    assert dl.size_caps(None, "none").total is None and dl.size_caps(None, "1G").ratio is None
    monkeypatch.setenv(dl.MAX_SIZE_ENV, "1G")
    assert dl.size_caps(690_000_000) == dl.SizeCaps(1024 ** 3, None,
                                                    "set by --max-size or $IMHARD_MAX_SIZE")
    with pytest.raises(ImHardError, match="--max-size '12 parsecs': expected a size"):
        dl.size_caps(None, "12 parsecs")


def _lying_zip(tmp_path, encrypted: bool):
    """A zip whose member declares 1 KiB and holds more (its CRC-32 of all of it, as a tool that
    patched only the sizes leaves it)."""
    if encrypted:  # ZipCrypto, stored: patch the uncompressed size in both headers
        data = bytearray(make_encrypted_zip({"top/zeros.bin": bytes(MIB // 4)}, "pw"))
        struct.pack_into("<I", data, 22, 1024)
        struct.pack_into("<I", data, data.rfind(b"PK\x01\x02") + 24, 1024)
        data = bytes(data)
    else:
        raw, crc = deflated_zeros(4)
        data = zip_of([("top/zeros.bin", raw, crc, 1024)])
    archive = tmp_path / "liar.zip"
    archive.write_bytes(data)
    return archive


@pytest.mark.parametrize("with_unzip", [True, False])
def test_zip_member_holding_more_than_it_declares_is_refused(tmp_path, monkeypatch, with_unzip):
    if with_unzip and dl.shutil.which("unzip") is None:
        pytest.skip("unzip is not installed on this machine")
    if not with_unzip:
        monkeypatch.setattr(dl.shutil, "which", lambda name: None)
    archive = _lying_zip(tmp_path, encrypted=with_unzip)
    with pytest.raises(UnsafeArchiveError, match=r"liar\.zip: .*does not hold the size .* the "
                       "archive declares for it, so the extraction was stopped and removed"):
        dl.extract(archive, tmp_path / "out", password="pw" if with_unzip else None,
                   notify=lambda m: None)
    assert _nothing_extracted(tmp_path)


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip", "password zip"])
def test_ordinary_archives_still_extract(tmp_path, kind):
    members = {"top/a/one.jpg": image_bytes(1), "top/b/two.jpg": image_bytes(2)}
    if kind == "zip":
        data = make_zip(members)
    elif kind == "password zip":
        data = make_encrypted_zip(members, "pw")
    else:
        data = make_tar(members, gz=kind == "tar.gz")
    archive = tmp_path / "src.bin"
    archive.write_bytes(data)
    out = dl.extract(archive, tmp_path / "out", password="pw", notify=lambda m: None)
    assert (out / "top/b/two.jpg").read_bytes() == members["top/b/two.jpg"]


# --------------------------------------------------------------------------------------------
# transfers

#: What the endless server sends at most, so that an unbounded client still ends (and fails).
ENDLESS = 256 * MIB


class HostileServer:
    """Loopback answers no well-behaved server gives: endless bodies, odd redirects."""

    def __init__(self):
        server = self
        self.sent = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.rsplit("/", 1)[-1]
        if path.startswith("endless"):  # HTTP/1.0, no Content-Length: the body ends at close
            h.send_response(200)
            h.end_headers()
            try:
                while self.sent < ENDLESS:
                    h.wfile.write(ZERO)
                    self.sent += MIB
            except OSError:
                pass
        elif path.startswith("huge"):
            h.send_response(200)
            h.send_header("Content-Length", str(1 << 40))
            h.end_headers()
        elif path.startswith("garbled"):
            h.send_response(200)
            h.send_header("Content-Encoding", "gzip")
            h.send_header("Content-Length", "12")
            h.end_headers()
            h.wfile.write(b"not gzip at all"[:12])
        else:
            h.send_response(302)
            h.send_header("Location", {"to-file": "file:///etc/passwd",
                                       "loop": "/loop"}.get(path, "/loop"))
            h.send_header("Content-Length", "0")
            h.end_headers()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hostile():
    server = HostileServer()
    yield server
    server.close()


def test_endless_stream_stops_at_the_cap_and_leaves_no_partial_file(hostile, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv(dl.MAX_SIZE_ENV, "64M")
    with pytest.raises(DownloadError, match=r"endless\.tar kept sending without saying how much "
                       r"\(no Content-Length\), more than the 64 MiB allowed .* partial file "
                       "deleted; if the file really is that big, pass --max-size") as err:
        dl.download(f"{hostile.base}/endless.tar", tmp_path, progress=False, backoff=0.0,
                    notify=lambda m: None)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
    assert hostile.sent < ENDLESS


def test_announced_size_beyond_the_cap_is_refused_before_writing(hostile, tmp_path):
    with pytest.raises(DownloadError, match=r"huge\.tar announces 1 TiB, more than the 1 GiB"):
        dl.download(f"{hostile.base}/huge.tar", tmp_path, progress=False, backoff=0.0,
                    caps=dl.size_caps(None, "1G"), notify=lambda m: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url, said", [
    ("{base}/to-file", r"redirects to 'file:///etc/passwd', which is not an http\(s\) address"),
    ("file:///etc/passwd", r"'file:///etc/passwd' is not an http\(s\) address"),
    ("{base}/loop", r"downloading .*/loop failed: Exceeded 30 redirects"),
    ("{base}/garbled.tar", r"downloading .*/garbled\.tar failed: .*decompress"),
    ("http://[::1/x.tar", r"'http://\[::1/x\.tar' is not a valid address"),
    ("http:///x.tar", r"downloading http:///x\.tar failed: .*[Nn]o host"),
])
def test_transport_errors_are_one_sentence(hostile, tmp_path, url, said):
    url = url.format(base=hostile.base)
    with pytest.raises(DownloadError, match=said + r".*--url .*--path") as err:
        dl.download(url, tmp_path / "x.tar", progress=False, retries=0, backoff=0.0,
                    notify=lambda m: None)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path, args, said", [
    ("to-file", [], "redirects to 'file:///etc/passwd'"),
    ("endless.tar", ["--max-size", "64M"], "kept sending without saying how much"),
])
def test_cli_build_says_one_sentence_and_exits_non_zero(hostile, tmp_path, path, args, said):
    res = CliRunner().invoke(main, ["build", "--source", "imagenet-a", "--url",
                                    f"{hostile.base}/{path}", "--home", str(tmp_path), *args])
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit)
    last = res.output.strip().replace("\r", "\n").splitlines()[-1]  # after the progress bar
    assert last.startswith("Error: ") and said in last, res.output
    assert res.output.count("Error") == 1, res.output
    assert "Traceback" not in res.output
    assert not list(tmp_path.rglob("*.part"))


def test_cli_refuses_a_bad_max_size_while_parsing(tmp_path):
    res = CliRunner().invoke(main, ["build", "--source", "imagenet-a", "--max-size", "lots",
                                    "--home", str(tmp_path)])
    assert res.exit_code == 2 and "--max-size 'lots': expected a size" in res.output
    assert list(tmp_path.iterdir()) == []


def test_a_devkit_member_bigger_than_a_devkit_is_not_read(tmp_path):
    from imagenet_hard.builders.imagenet import _read_devkit_tar

    info = tarfile.TarInfo("ILSVRC2012_devkit_t12/data/meta.mat")
    info.size = 1024 * MIB
    buf = io.BytesIO(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT))
                     + gzip.compress(ZERO, 9) * 1024 + gzip.compress(bytes(1024)))
    path = tmp_path / "ILSVRC2012_devkit_t12.tar.gz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError, match="meta.mat declares 1073741824 bytes"):
        _read_devkit_tar(path)
