"""One image rule for every stage (issue 9, defect 5): a JPEG whose EXIF Orientation is 6 is seen
as the same pixels, in their stored order, by build, mining, review, publish (as `datasets`
decodes it) and scoring; and only :mod:`imagenet_hard.pixels` decodes image files."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from PIL import ExifTags, Image, ImageOps
from source_archives import make_tar

from imagenet_hard import build_source, labels, zoom
from imagenet_hard.cli import main
from imagenet_hard.imaging import NO_RULES, LicenceRules, publish_image, review_image
from imagenet_hard.judges import ScriptedJudge
from imagenet_hard.mining import mine
from imagenet_hard.pixels import ImageError, open_image, open_record, reorients, to_rgb
from imagenet_hard.publish import check, publish
from imagenet_hard.review import ReviewStore, start_server

ROOT = Path(__file__).resolve().parents[1]
STORED = (96, 64)            # width, height of the pixels in the file; a viewer shows 64 × 96
WNID = labels.imagenet_a_wnids()[0]
LABEL = labels.wnid_to_index()[WNID]
WRONG = next(c for c in labels.label_space_indices("in_a_200") if c != LABEL)


def turned_jpeg(orientation: int = 6) -> bytes:
    """A non-square JPEG with a pattern no flip or turn maps onto itself, and the tag."""
    w, h = STORED
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([np.where((x < w // 3) & (y < h // 2), 255, 0),   # a red block, top left
                    x * 255 // (w - 1),                                # green grows to the right
                    y * 255 // (h - 1)], axis=-1).astype(np.uint8)     # blue grows downwards
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def digest(im: Image.Image) -> tuple[tuple[int, int], str]:
    """(size, SHA-256 of the RGB pixels): what every stage must agree on."""
    rgb = np.ascontiguousarray(np.asarray(to_rgb(im)))
    return im.size, hashlib.sha256(rgb.tobytes()).hexdigest()


def crop_counts(crops: torch.Tensor) -> Counter:
    return Counter(hashlib.sha256(c.contiguous().numpy().tobytes()).hexdigest() for c in crops)


class Recorder:
    """A judge function that never answers the label and keeps every crop it is shown."""

    def __init__(self):
        self.crops: list[torch.Tensor] = []

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        self.crops.extend(crops.clone())
        return torch.full((crops.shape[0],), WRONG)


REPORTER = '''
import hashlib, sys
import numpy as np

METADATA = {"name": "Reporter"}

def seen(image):
    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    print("SEEN", image.size[0], image.size[1], hashlib.sha256(rgb.tobytes()).hexdigest(),
          flush=True)
    return np.full(1000, 1e-3, dtype=np.float32)
'''
PREDICT_FORM = REPORTER + '''
class Reporter:
    def predict(self, images):
        return np.stack([seen(im) for im in images])

def load(device):
    return Reporter()
'''
MODEL_FORM = REPORTER + '''
import torch

def transform(image):
    return torch.from_numpy(seen(image))

model = torch.nn.Identity()
'''


@pytest.fixture
def turned_home(tmp_path, isolated_home):
    """An ImageNet-A archive holding the turned JPEG, built by the real build step."""
    archive = tmp_path / "imagenet-a.tar"
    archive.write_bytes(make_tar({f"imagenet-a/{WNID}/turned.jpg": turned_jpeg()}))
    table = build_source("imagenet-a", path=archive)
    row = pq.read_table(table).to_pylist()[0]
    return isolated_home, row


def test_a_turned_jpeg_is_the_same_pixels_at_every_stage(turned_home, tmp_path):
    home, row = turned_home
    file = home / row["path"]
    truth = open_image(file)
    assert truth.getexif()[ExifTags.Base.Orientation] == 6 and truth.size == STORED
    expect = digest(truth)
    shown = digest(ImageOps.exif_transpose(truth))     # what a tag-applying viewer would show
    assert shown[0] == STORED[::-1] and shown != expect

    # build: the source table's size
    assert (row["width"], row["height"]) == STORED

    # mining: every crop the judge is shown, both crop backends
    rgb = to_rgb(truth)
    made = {"pil": zoom.zoom_crops(rgb),
            "torch": zoom.zoom_crops_torch([zoom.image_to_tensor(rgb)], device="cpu")[0]}
    for backend, crops in made.items():
        judge = Recorder()
        run = mine(["imagenet-a"], ScriptedJudge(judge, name="recorder"), home=home,
                   run=f"exif-{backend}", device="cpu", workers=0, crops=backend)
        assert crop_counts(torch.stack(judge.crops)) == crop_counts(crops), backend
        assert [c["id"] for c in run.candidates().to_pylist()] == [row["id"]]
    turned_crops = zoom.zoom_crops(to_rgb(ImageOps.exif_transpose(truth)))
    assert crop_counts(turned_crops) != crop_counts(made["pil"])   # the check can fail

    # review: the bytes the server sends for /images/ID, decoded as a browser would
    with ReviewStore(home) as store:
        store.import_run("exif-pil")
    server = start_server(home=home, port=0)
    try:
        url = server.url.rstrip("/") + "/images/" + row["id"]
        with urllib.request.urlopen(url, timeout=30) as resp:
            served = resp.read()
    finally:
        server.stop()
    assert digest(ImageOps.exif_transpose(Image.open(io.BytesIO(served)))) == expect

    # publish: the parquet's image as `datasets.load_dataset` decodes it
    import datasets

    out = tmp_path / "dist"
    publish("exif-pil", None, out, include_pending=True, home=home)
    assert check(out).ok, check(out).problems
    ds = datasets.load_dataset(str(out), split="validation")
    assert ds[0]["id"] == row["id"] and ds[0]["image"].getexif().get(0x0112) is None
    assert digest(ds[0]["image"]) == expect

    # scoring: what a submission receives, in either form, through `imhard score`
    for name, body in (("predict", PREDICT_FORM), ("model", MODEL_FORM)):
        sub = tmp_path / f"reporter_{name}.py"
        sub.write_text(body)
        res = CliRunner().invoke(main, ["score", str(sub), "--dataset", str(out), "--out",
                                        str(tmp_path / f"{name}.json"), "--home", str(home)])
        assert res.exit_code == 0, res.output
        seen = [line.split()[-3:] for line in res.output.splitlines() if "SEEN" in line]
        assert seen == [[str(STORED[0]), str(STORED[1]), expect[1]]], (name, res.output)

    # a folder holding the tagged bytes (published by an older toolkit) fails the check
    shard = next((out / "data").glob("*.parquet"))
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["image"] = {"bytes": file.read_bytes(), "path": row["id"]}
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    assert any(f"{row['id']}: image carries an EXIF orientation tag" in p
               for p in check(out).problems)


def test_the_published_bytes_of_a_tagged_image_are_tag_free_and_untagged_bytes_are_kept():
    data = turned_jpeg()
    assert reorients(data) and not reorients(turned_jpeg(orientation=1))
    for out, changed in (publish_image(data, NO_RULES), publish_image(data, LicenceRules())):
        assert changed and not reorients(out) and Image.open(io.BytesIO(out)).format == "PNG"
        assert digest(Image.open(io.BytesIO(out))) == digest(open_image(data))
    kept = turned_jpeg(orientation=1)
    assert publish_image(kept, NO_RULES) == (kept, False)


def test_xmp_orientation_and_unreadable_metadata_are_re_encoded_too(tmp_path, monkeypatch):
    arr = np.arange(40 * 30 * 3, dtype=np.uint8).reshape(30, 40, 3)
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
           b'02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
           b'tiff:Orientation="8"/></rdf:RDF></x:xmpmeta>')
    file = tmp_path / "xmp.jpg"
    Image.fromarray(arr).save(file, "JPEG", xmp=xmp)
    assert reorients(file.read_bytes())
    data, kind = review_image(file, NO_RULES)
    assert kind == "image/png" and not reorients(data)
    assert digest(Image.open(io.BytesIO(data))) == digest(open_image(file))

    # Metadata older Pillows cannot parse (huggingface/datasets#7668: a UnicodeDecodeError in
    # getexif, which datasets calls on every image): re-encoded, so the copy has none.
    plain = tmp_path / "plain.jpg"
    Image.fromarray(arr).save(plain, "JPEG")

    def broken(self):
        raise UnicodeDecodeError("utf-8", b"\xa8", 0, 1, "invalid start byte")

    monkeypatch.setattr(Image.Image, "getexif", broken)
    assert reorients(plain.read_bytes())
    out, changed = publish_image(plain.read_bytes(), NO_RULES)
    monkeypatch.undo()
    assert changed and not reorients(out)
    assert digest(Image.open(io.BytesIO(out))) == digest(open_image(plain))


def test_scoring_decodes_records_by_the_rule_not_by_datasets(tmp_path):
    import datasets

    from imagenet_hard.score import worker

    data = turned_jpeg()
    feats = datasets.Features({"image": datasets.Image()})
    ds = datasets.Dataset.from_dict({"image": [{"bytes": data, "path": None}]}, features=feats)
    ds.to_parquet(str(tmp_path / "x.parquet"))
    arrow = datasets.load_dataset("parquet", data_files=str(tmp_path / "x.parquet"),
                                  split="train", cache_dir=str(tmp_path / "cache"))
    assert arrow[0]["image"].size == STORED[::-1]            # datasets itself turns it
    opened = worker._open_images([f["filename"] for f in arrow.cache_files])
    assert digest(opened.image(0)) == digest(open_image(data))
    assert [digest(opened.image(k)) for k in range(len(opened))] == [digest(open_image(data))]
    assert digest(open_record({"bytes": None, "path": str(_write(tmp_path, data))})) == \
        digest(open_image(data))
    with pytest.raises(ImageError, match="cannot be decoded"):
        open_record({"bytes": b"not an image", "path": None})


def _write(folder: Path, data: bytes) -> Path:
    path = folder / "turned.jpg"
    path.write_bytes(data)
    return path


# -- the rule is one function -------------------------------------------------------------------

#: Decoding or reorienting an image file outside ``pixels`` (module → why it may).
ALLOWED = {
    "imagenet_hard.pixels": "the rule itself",
    "imagenet_hard.zoom": "reference_crops restates the paper's code (its own convert('RGB'))",
    "imagenet_hard.bench.score": "the bare reference loop a user would write, timed against ours",
    "imagenet_hard.corruptions.torch_backend": "jpeg_compression decodes its own JPEG encode",
    "imagenet_hard.corruptions.torch_backend.weather": "frost photos shipped as package data",
}


def _decoding_calls(tree: ast.AST) -> list[str]:
    """Calls that decode, reorient or RGB-convert an image, or a ``to_rgb`` defined anew."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "to_rgb":
            found.append(f"def to_rgb (line {node.lineno})")
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr, owner = node.func.attr, node.func.value
        name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        rgb = attr == "convert" and any(isinstance(a, ast.Constant) and a.value == "RGB"
                                        for a in node.args)
        if (attr == "open" and name == "Image") or attr in ("exif_transpose", "decode_example") \
                or rgb:
            found.append(f"{name}.{attr} (line {node.lineno})")
    return found


def test_only_pixels_decodes_images_and_converts_to_rgb():
    offenders = {}
    for folder in ("imagenet_hard", "builders", "leaderboard"):
        for file in sorted((ROOT / folder).rglob("*.py")):
            module = ".".join(file.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            calls = _decoding_calls(ast.parse(file.read_text(encoding="utf-8")))
            if calls and module not in ALLOWED:
                offenders[module] = calls
    assert not offenders, json.dumps(offenders, indent=1)
    # and the scan sees what it is looking for
    assert _decoding_calls(ast.parse("Image.open(f)\nImageOps.exif_transpose(i)\n"
                                     "im.convert('RGB')\ndef to_rgb(x): pass")) != []
    assert len(_decoding_calls(ast.parse((ROOT / "imagenet_hard/pixels.py").read_text()))) >= 2


def test_the_rule_imports_neither_torch_nor_datasets():
    """The sandboxed scoring child decodes through it; build and review never load torch."""
    import subprocess
    import sys

    code = ("import sys, imagenet_hard.pixels, imagenet_hard.imaging; "
            "print(sorted(m for m in ('torch', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
