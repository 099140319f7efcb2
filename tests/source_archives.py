"""Test helpers: a loopback HTTP server with Range support, and tiny archives in each source's
exact layout (folder names, mapping files, label files), made here from synthetic images."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import tarfile
import threading
import time
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from imagenet_hard import labels

# --------------------------------------------------------------------------------------------
# loopback server


class LoopbackServer:
    """Serves byte strings over HTTP on 127.0.0.1 with Range support and fault injection.

    ``cut_once``: paths whose next response is cut half-way (the connection is dropped).
    ``fail_next``: path → number of 503 answers before serving. ``ignore_range``: answer 200 with
    the whole file even when a Range is asked for. ``requests`` logs (path, Range header).
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_once: set[str] = set()
        self.fail_next: dict[str, int] = {}
        self.ignore_range = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, name: str, data: bytes) -> str:
        self.files["/" + name] = data
        return f"{self.base}/{name}"

    def range_requests(self, name: str) -> list[str]:
        return [r for p, r in self.requests if p == "/" + name and r]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        rng = h.headers.get("Range")
        self.requests.append((h.path, rng))
        if self.fail_next.get(h.path, 0) > 0:
            self.fail_next[h.path] -= 1
            h.send_response(503)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        data = self.files.get(h.path)
        if data is None:
            h.send_error(404)
            return
        start = 0
        if rng and not self.ignore_range and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        body = data[start:]
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        if h.path in self.cut_once:
            self.cut_once.discard(h.path)
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            time.sleep(0.05)
            h.connection.shutdown(2)  # drop the connection mid-transfer
            return
        h.wfile.write(body)


# --------------------------------------------------------------------------------------------
# images


def image_bytes(seed: int, size=(16, 12), mode="RGB", fmt="JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr, "RGB")
    if mode == "P":
        im = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    elif mode != "RGB":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def truncated_jpeg(seed: int) -> bytes:
    data = image_bytes(seed, size=(64, 48))
    return data[: len(data) // 2]


# --------------------------------------------------------------------------------------------
# archives


def make_tar(members: dict[str, bytes], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _crc_byte(crc: int, b: int) -> int:
    """The raw CRC-32 table step ZipCrypto uses (no pre/post inversion)."""
    return zlib.crc32(bytes([b]), crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def _zipcrypto(data: bytes, password: bytes, check: int) -> bytes:
    k0, k1, k2 = 0x12345678, 0x23456789, 0x34567890

    def update(c):
        nonlocal k0, k1, k2
        k0 = _crc_byte(k0, c)
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = _crc_byte(k2, k1 >> 24)

    for c in password:
        update(c)
    out = bytearray()
    header = bytes(random.Random(0).randrange(256) for _ in range(11)) + bytes([check])
    for p in header + data:
        t = (k2 | 2) & 0xFFFF
        out.append(p ^ (((t * (t ^ 1)) >> 8) & 0xFF))
        update(p)
    return bytes(out)


def make_encrypted_zip(members: dict[str, bytes], password: str,
                       links: dict[str, str] | None = None, host: int = 3) -> bytes:
    """A ZipCrypto (traditional PKWARE) stored zip, as ObjectNet ships; zipfile cannot write one.

    ``links`` adds symbolic links (member → target) the way Info-ZIP stores them: the target is
    the member's data and the Unix mode in the external attributes says S_IFLNK. ``host`` is the
    "made by" system (3 = Unix; unzip also restores links made on a few others).
    """
    pwd, out, central = password.encode(), bytearray(), bytearray()
    dos_time, dos_date = 0, (2020 - 1980) << 9 | 1 << 5 | 1
    entries = [(name, data, 0o100644) for name, data in members.items()]
    entries += [(name, target.encode(), 0o120777) for name, target in (links or {}).items()]
    for name, data, mode in entries:
        raw = name.encode()
        crc = zlib.crc32(data)
        enc = _zipcrypto(data, pwd, crc >> 24)
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 1, 0, dos_time, dos_date, crc,
                           len(enc), len(data), len(raw), 0) + raw + enc
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, host << 8 | 0x1E, 20, 1, 0,
                               dos_time, dos_date, crc, len(enc), len(data), len(raw), 0, 0, 0,
                               0, mode << 16, offset) + raw
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                                 len(central), len(out), 0)
    return bytes(out)


# --------------------------------------------------------------------------------------------
# sources in their exact layouts


def class_folder_members(top: str, wnids: list[str], per_class: int = 2, ext: str = "jpg",
                         seed: int = 0) -> dict[str, bytes]:
    members = {}
    for c, wnid in enumerate(wnids):
        for k in range(per_class):
            members[f"{top}/{wnid}/{wnid}_{k}.{ext}"] = image_bytes(seed + 100 * c + k)
    return members


def imagenet_a_members() -> tuple[dict[str, bytes], dict]:
    """IN-A layout with every kind of bad and odd file; returns (members, expectations)."""
    ws = list(labels.imagenet_a_wnids()[:3])
    m = {"imagenet-a/README.txt": b"ImageNet-A, synthetic test copy\n"}
    m.update(class_folder_members("imagenet-a", ws))
    w0 = ws[0]
    m[f"imagenet-a/{w0}/grey.jpg"] = image_bytes(7, mode="L")
    m[f"imagenet-a/{w0}/cmyk.jpg"] = image_bytes(8, mode="CMYK")
    m[f"imagenet-a/{w0}/palette.png"] = image_bytes(9, mode="P", fmt="PNG")
    m[f"imagenet-a/{w0}/alpha.png"] = image_bytes(10, mode="RGBA", fmt="PNG")
    m[f"imagenet-a/{w0}/big.jpg"] = image_bytes(11, size=(200, 100))  # a "bomb" when limited
    m[f"imagenet-a/{w0}/empty.jpg"] = b""
    m[f"imagenet-a/{w0}/truncated.jpg"] = truncated_jpeg(12)
    m[f"imagenet-a/{w0}/notes.txt"] = b"not an image\n"
    m["imagenet-a/n99999999/stray.jpg"] = image_bytes(13)
    return m, {"wnids": ws, "rows": 3 * 2 + 5, "rejects": 4}


def ilsvrc_order(seed: int = 3) -> list[int]:
    """A synthetic ILSVRC2012-id order: position i holds the torch index of ILSVRC2012_ID i+1.
    Not the identity, so a builder that confuses ids with indices fails."""
    order = list(range(labels.NUM_CLASSES))
    random.Random(seed).shuffle(order)
    return order


def meta_mat(order: list[int]) -> bytes:
    from scipy.io import savemat

    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children",
              "wordnet_height", "num_train_images"]
    arr = np.zeros((len(order) + 2,), dtype=[(f, "O") for f in fields])
    for i, idx in enumerate(order):
        arr[i] = (i + 1, labels.wnids()[idx], labels.lemmas()[idx], "", 0,
                  np.zeros((0,)), 0, 1300)
    # Non-leaf synsets follow the 1000 classes in the real file; they must be ignored.
    arr[len(order)] = (1001, "n00001740", "entity", "", 2, np.array([1, 2]), 19, 0)
    arr[len(order) + 1] = (1002, "n00002137", "abstraction", "", 1, np.array([3]), 18, 0)
    buf = io.BytesIO()
    savemat(buf, {"synsets": arr})
    return buf.getvalue()


def val_images(numbers: list[int]) -> dict[str, bytes]:
    return {f"ILSVRC2012_val_{n:08d}.JPEG": image_bytes(1000 + n) for n in numbers}


def devkit_tar(numbers_to_index: dict[int, int], order: list[int]) -> bytes:
    """ILSVRC2012_devkit_t12.tar.gz with data/meta.mat and the ground truth (ILSVRC ids)."""
    to_id = {idx: i + 1 for i, idx in enumerate(order)}
    n_max = max(numbers_to_index)
    lines = [str(to_id[numbers_to_index.get(n, 0)]) for n in range(1, n_max + 1)]
    return make_tar({
        "ILSVRC2012_devkit_t12/data/meta.mat": meta_mat(order),
        "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt":
            ("\n".join(lines) + "\n").encode(),
        "ILSVRC2012_devkit_t12/readme.txt": b"devkit\n",
    }, gz=True)


def loc_csv(numbers_to_index: dict[int, int]) -> bytes:
    rows = ["ImageId,PredictionString"]
    for n, idx in sorted(numbers_to_index.items()):
        w = labels.wnids()[idx]
        rows.append(f"ILSVRC2012_val_{n:08d},{w} 10 20 100 120 {w} 5 5 50 60")
    return ("\n".join(rows) + "\n").encode()


#: ObjectNet classes used in the synthetic archive, with their real mapping strings (three of
#: the nine ObjectNet classes that map to several ImageNet classes, and a single-mapped one).
OBJECTNET_CLASSES = {
    "alarm_clock": ("Alarm clock", "analog clock; digital clock"),
    "banana": ("Banana", "banana"),
    "bicycle": ("Bicycle", "mountain bike, all-terrain bike, off-roader; "
                           "bicycle-built-for-two, tandem bicycle, tandem"),
    "chair": ("Chair", "barber chair; folding chair; rocking chair, rocker"),
    "squeegee": ("Squeegee", None),  # one of the 200 classes without an ImageNet counterpart
}
#: Every ImageNet class each folder maps to (all-mapped), and the authors' one (paper).
OBJECTNET_ALL_MAPPED = {"alarm_clock": [409, 530], "banana": [954], "bicycle": [671, 444],
                        "chair": [423, 559, 765]}
OBJECTNET_PAPER = {"alarm_clock": [409], "banana": [954], "bicycle": [671], "chair": [423]}


def objectnet_members(with_torch_map: bool = True, classes: dict | None = None
                      ) -> tuple[dict[str, bytes], dict]:
    """ObjectNet's layout; ``classes`` replaces :data:`OBJECTNET_CLASSES` (folder → (class,
    mapping string or None))."""
    classes = OBJECTNET_CLASSES if classes is None else classes
    order = ilsvrc_order(5)
    lemmas = labels.lemmas()
    mappings = "objectnet-1.0/mappings/"
    m = {
        "objectnet-1.0/README": b"ObjectNet 1.0, synthetic test copy\n",
        mappings + "folder_to_objectnet_label.json":
            json.dumps({f: c for f, (c, _) in classes.items()}).encode(),
        mappings + "objectnet_to_imagenet_1k.json":
            json.dumps({c: names for c, names in classes.values() if names}).encode(),
        mappings + "imagenet_to_label_2012_v2":
            ("\n".join(lemmas[idx] for idx in order) + "\n").encode(),
    }
    if with_torch_map:
        m[mappings + "pytorch_to_imagenet_2012_id.json"] = json.dumps(
            {str(idx): line for line, idx in enumerate(order)}).encode()
    counts = {"alarm_clock": 2, "banana": 2, "bicycle": 1, "chair": 1, "squeegee": 2,
              "mystery_object": 1}
    for c, (folder, n) in enumerate(counts.items()):
        for k in range(n):
            m[f"objectnet-1.0/images/{folder}/{folder}{k}.png"] = image_bytes(
                500 + 10 * c + k, fmt="PNG")
    return m, {"labels": OBJECTNET_ALL_MAPPED, "paper": OBJECTNET_PAPER, "rows": 6,
               "rejects": 1, "outside": 2}


def write_members(root: Path, members: dict[str, bytes]) -> Path:
    for name, data in members.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def touch_old(path: Path) -> None:
    os.utime(path, (1_600_000_000, 1_600_000_000))
