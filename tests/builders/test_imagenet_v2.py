"""ImageNetV2 MatchedFrequency from a synthetic ``imagenetv2-matched-frequency.tar.gz`` in the exact
layout users download (class-index folders, hash-named .jpeg files), served over loopback HTTP."""

from __future__ import annotations

import hashlib

import duckdb
import pytest
from click.testing import CliRunner
from source_archives import image_bytes, make_tar, write_members

from imagenet_hard import build_source, labels
from imagenet_hard.cli import main
from imagenet_hard.errors import ChecksumError
from imagenet_hard.sources import get_source

TOP = "imagenetv2-matched-frequency-format-val"
CLASSES = (0, 7, 409, 999)


def v2_members() -> dict[str, bytes]:
    members = {}
    for c in CLASSES:
        for k in range(2):
            data = image_bytes(7000 + 10 * c + k, size=(40, 30))
            members[f"{TOP}/{c}/{hashlib.sha1(data).hexdigest()}.jpeg"] = data
    members[f"{TOP}/007/padded.jpeg"] = image_bytes(1)       # not the canonical spelling of 7
    members[f"{TOP}/1000/outside.jpeg"] = image_bytes(2)     # no class 1000
    members[f"{TOP}/n01440764/wnid.jpeg"] = image_bytes(3)   # folders are indices, not wnids
    members[f"{TOP}/stray.jpeg"] = image_bytes(4)
    return members


def rows_of(table) -> dict[str, dict]:
    rel = duckdb.sql(f"select * from read_parquet('{table}') order by id")
    cols = [d[0] for d in rel.description]
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rel.fetchall()}


def test_imagenet_v2_from_url_labels_are_folder_indices(http_server, isolated_home):
    data = make_tar(v2_members(), gz=True)
    url = http_server.add("imagenetv2-matched-frequency.tar.gz", data)
    res = CliRunner().invoke(main, ["build", "--source", "imagenet-v2", "--url", url,
                                    "--sha256", hashlib.sha256(data).hexdigest()])
    assert res.exit_code == 0, res.output
    assert f"kept {2 * len(CLASSES)}, rejected 4" in res.output
    rows = rows_of(isolated_home / "sources" / "imagenet_v2.parquet")
    assert len(rows) == 2 * len(CLASSES)
    for row in rows.values():
        folder = row["id"].split("/")[2]
        assert row["id"].startswith(f"imagenet_v2/{TOP}/") and row["id"].endswith(".jpeg")
        assert row["label"] == [int(folder)]
        assert row["english_label"] == labels.english_labels([int(folder)])
        assert row["origin"] == "imagenet_v2" and row["label_space"] == "in1k"
        assert row["label_paper"] is None
    assert sorted({r["label"][0] for r in rows.values()}) == list(CLASSES)
    path = isolated_home / "sources" / "imagenet_v2.rejects.parquet"
    rej = {p.rsplit("/", 1)[-1]: why for p, why in
           duckdb.sql(f"select * from read_parquet('{path}')").fetchall()}
    assert rej["padded.jpeg"].startswith("unknown class folder '007'")
    assert rej["outside.jpeg"].startswith("unknown class folder '1000'")
    assert rej["wnid.jpeg"].startswith("unknown class folder 'n01440764'")
    assert "class-index folders 0..999" in rej["wnid.jpeg"]
    assert rej["stray.jpeg"] == "not inside a class folder"


def test_imagenet_v2_from_extracted_folder_has_the_same_ids(http_server, tmp_path):
    members = v2_members()
    url = http_server.add("imagenetv2-matched-frequency.tar.gz", make_tar(members, gz=True))
    from_url = set(rows_of(build_source("imagenet-v2", url=url)))
    folder = write_members(tmp_path / "user", members) / TOP   # --path at the top folder itself
    assert set(rows_of(build_source("imagenet-v2", path=folder, force=True))) == from_url


def test_the_published_checksum_guards_the_default_address(http_server, monkeypatch):
    src = type(get_source("imagenet-v2"))
    assert src.default_url == ("https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main/"
                               "imagenetv2-matched-frequency.tar.gz")
    url = http_server.add("imagenetv2-matched-frequency.tar.gz", make_tar(v2_members(), gz=True))
    monkeypatch.setattr(src, "default_url", url)  # stands in for the Hub: not the real bytes
    with pytest.raises(ChecksumError, match=src.default_sha256):
        build_source("imagenet-v2")


def test_imhard_sources_lists_imagenet_v2():
    res = CliRunner().invoke(main, ["sources"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.split()[0] == "imagenet-v2")
    assert "in1k" in lines[start]
    assert "huggingface.co/datasets/vaishaal/ImageNetV2" in "\n".join(lines[start:start + 5])
