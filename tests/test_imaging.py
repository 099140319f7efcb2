"""Licence rules: an attribute of the source's builder, applied by `imaging` for review and publish."""

from __future__ import annotations

import hashlib
import io
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from run_support import write_run

from imagenet_hard import labels
from imagenet_hard.imaging import (
    NO_RULES,
    LicenceRules,
    has_border,
    licence_rules,
    publish_image,
    review_image,
)
from imagenet_hard.publish import check, publish
from imagenet_hard.records import SourceRow, make_id, write_source_table
from imagenet_hard.review import ReviewStore
from imagenet_hard.review.images import image_bytes
from imagenet_hard.sources import SOURCES, SourceBuilder, list_sources

BORDER = LicenceRules(web_border=True)


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _ring(a: np.ndarray) -> np.ndarray:
    ring = np.ones(a.shape[:2], bool)
    ring[1:-1, 1:-1] = False
    return a[ring]


def test_the_rule_is_the_builders_attribute():
    bordered = [n for n in list_sources() if licence_rules(n).web_border]
    assert bordered == ["objectnet"]
    assert SOURCES.get("objectnet").web_border is True
    assert licence_rules("imagenet_a") == licence_rules("imagenet-a") == NO_RULES
    assert licence_rules("no-such-source") == NO_RULES      # unknown source: nothing to apply


def test_review_and_publish_draw_the_same_border(tmp_path):
    rng = np.random.default_rng(3)
    original = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    file = tmp_path / "x.png"
    Image.fromarray(original).save(file)
    served, kind = review_image(file, BORDER)
    published, reencoded = publish_image(file.read_bytes(), BORDER)
    assert kind == "image/png" and reencoded
    for data in (served, published):
        got = _pixels(data)
        assert (_ring(got) == [255, 0, 0]).all()
        assert (got[1:-1, 1:-1] == original[1:-1, 1:-1]).all()
        assert has_border(Image.open(io.BytesIO(data)))
    assert not has_border(Image.open(file))
    # without rules both hand back the original bytes
    assert review_image(file, NO_RULES) == (file.read_bytes(), "image/png")
    assert publish_image(file.read_bytes(), NO_RULES) == (file.read_bytes(), False)


def test_exif_orientation_is_never_applied_by_review_or_publish(tmp_path):
    im = Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6                                         # rotate 90° when shown
    file = tmp_path / "turned.jpg"
    im.save(file, exif=exif.tobytes())
    for rules in (BORDER, NO_RULES):           # re-encoded tag-free either way (tests/test_exif.py)
        for data in (review_image(file, rules)[0], publish_image(file.read_bytes(), rules)[0]):
            assert Image.open(io.BytesIO(data)).size == (40, 30)
            assert Image.open(io.BytesIO(data)).getexif().get(0x0112) is None


class BorderedTestSource(SourceBuilder):
    """A plugin-like source whose licence asks for the border; its origin is not ObjectNet's."""

    name = "bordered-test"
    origin = "bordered"
    web_border = True


@pytest.fixture
def bordered_home(sample_home, isolated_home, monkeypatch):
    """Sample photos under a second source, ``bordered_test``, with a finished run over both."""
    list_sources()                           # the built-in builders first
    monkeypatch.setattr(SOURCES, "_items", dict(SOURCES._items))  # undone after the test
    SOURCES.register("bordered-test")(BorderedTestSource)
    home = isolated_home
    shutil.copytree(sample_home / "sources", home / "sources")
    photo = next((home / "sources" / "sample").glob("*/coffee.png"))
    dest = home / "sources" / "bordered_test" / "cup.png"
    dest.parent.mkdir(parents=True)
    shutil.copyfile(photo, dest)
    width, height = Image.open(dest).size
    row = SourceRow(id=make_id("bordered_test", "cup.png"), origin="bordered",
                    path=str(dest.relative_to(home)), label=[967],
                    english_label=labels.english_labels([967]), label_space="in1k",
                    width=width, height=height, sha256=hashlib.sha256(dest.read_bytes()).hexdigest())
    write_source_table([row], home / "sources" / "bordered_test.parquet", "bordered_test")
    chelsea = next(r["id"] for r in pq.read_table(home / "sources" / "sample.parquet").to_pylist()
                   if r["id"].endswith("chelsea.png"))
    cand = {"top5": [1, 2, 3, 4, 5], "top5_prob": [0.5, 0.2, 0.1, 0.1, 0.1], "best_crop": 4}
    write_run(home, "bordered-run", ["bordered_test", "sample"], {row.id: cand, chelsea: cand})
    return home, row, chelsea


def test_a_new_source_with_the_rule_is_bordered_by_review_and_publish(bordered_home, tmp_path):
    home, row, chelsea = bordered_home
    with ReviewStore(home) as store:
        store.import_run("bordered-run")
        rel, source = store.image(row.id)
        served, kind = image_bytes(store.home, rel, source)
        rel_chelsea, sample = store.image(chelsea)
        plain, _ = image_bytes(store.home, rel_chelsea, sample)
    assert source == "bordered_test" and sample == "sample"
    assert kind == "image/png" and (_ring(_pixels(served)) == [255, 0, 0]).all()
    assert plain == (home / rel_chelsea).read_bytes()

    res = publish("bordered-run", None, tmp_path / "out", include_pending=True, home=home)
    shard = res.shards[0]
    rows = {r["id"]: r for r in pq.read_table(shard).to_pylist()}
    stored = rows[row.id]["image"]
    assert stored["path"].endswith(".png") and (_ring(_pixels(stored["bytes"])) == [255, 0, 0]).all()
    assert rows[chelsea]["image"]["path"] == chelsea                  # untouched bytes
    assert check(res.out).ok

    # the check looks the rule up by the row's source too: an unbordered image is reported
    table = pq.read_table(shard)
    tampered = table.to_pylist()
    for r in tampered:
        if r["id"] == row.id:
            r["image"] = {"bytes": (home / row.path).read_bytes(), "path": stored["path"]}
    pq.write_table(pa.Table.from_pylist(tampered, schema=table.schema), shard)
    problems = check(res.out).problems
    assert any(f"{row.id}: image of bordered_test without the 1-pixel red border" in p
               for p in problems), problems
