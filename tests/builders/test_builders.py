"""Every source built from a synthetic archive in its exact layout, served over loopback HTTP."""

from __future__ import annotations

import hashlib
import io
import tarfile

import duckdb
import pytest
from click.testing import CliRunner
from source_archives import (
    class_folder_members,
    devkit_tar,
    ilsvrc_order,
    imagenet_a_members,
    loc_csv,
    make_encrypted_zip,
    make_tar,
    make_zip,
    objectnet_members,
    val_images,
    write_members,
)

from imagenet_hard import build_source, labels, sources
from imagenet_hard.cli import main
from imagenet_hard.errors import MissingFileError
from imagenet_hard.records import read_table, table_label_spaces


def rows_of(table) -> dict[str, dict]:
    rel = duckdb.sql(f"select * from read_parquet('{table}') order by id")
    cols = [d[0] for d in rel.description]
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rel.fetchall()}


def rejects_of(home, name) -> dict[str, str]:
    path = home / "sources" / f"{name.replace('-', '_')}.rejects.parquet"
    return {r[0]: r[1] for r in duckdb.sql(f"select * from read_parquet('{path}')").fetchall()}


def cli_build(*args):
    res = CliRunner().invoke(main, ["build", *args])
    assert res.exit_code == 0, res.output
    return res


# --------------------------------------------------------------------------------------------
# ImageNet-A: the full catalogue of odd and bad files


def test_imagenet_a_from_url_with_rejects_and_modes(http_server, isolated_home, monkeypatch):
    monkeypatch.setattr(sources, "MAX_PIXELS", 10_000)  # the 200x100 image becomes a bomb
    members, exp = imagenet_a_members()
    url = http_server.add("imagenet-a.tar", make_tar(members))
    res = cli_build("--source", "imagenet_a", "--url", url)
    assert f"kept {exp['rows'] - 1}, rejected {exp['rejects'] + 1}" in res.output
    assert "no published SHA-256" in res.output  # a mirror without --sha256: hash recorded
    rows = rows_of(isolated_home / "sources" / "imagenet_a.parquet")
    assert len(rows) == exp["rows"] - 1
    for row in rows.values():
        wnid = row["id"].split("/")[2]
        assert row["label"] == [labels.wnid_to_index()[wnid]]  # timm's wnid order
        assert row["english_label"] == [labels.clip_names()[row["label"][0]]]
        assert row["label_space"] == "in_a_200" and row["origin"] == "imagenet_a"
        data = (isolated_home / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
    w0 = exp["wnids"][0]
    for name in ("grey.jpg", "cmyk.jpg", "palette.png", "alpha.png"):
        assert f"imagenet_a/imagenet-a/{w0}/{name}" in rows  # converted later, never rejected
    rej = {k.rsplit("/", 1)[-1]: v for k, v in rejects_of(isolated_home, "imagenet-a").items()}
    assert rej["empty.jpg"] == "empty file (0 bytes)"
    assert rej["truncated.jpg"].startswith("not a decodable image")
    assert rej["notes.txt"].startswith("not a decodable image")
    assert rej["stray.jpg"].startswith("unknown class folder 'n99999999'")
    assert rej["big.jpg"].startswith("decompression bomb")
    assert "README.txt" not in rej


def test_imagenet_a_from_user_folder_is_linked_not_copied(tmp_path, isolated_home):
    members, exp = imagenet_a_members()
    user = write_members(tmp_path / "data", members) / "imagenet-a"  # --path at the top folder
    table = build_source("imagenet-a", path=user)
    rows = rows_of(table)
    assert len(rows) == exp["rows"]  # the 200x100 image is fine at the default limit
    link = isolated_home / "sources" / "imagenet_a" / "files"
    assert link.is_symlink() and link.resolve() == user.resolve()
    row = next(iter(rows.values()))
    assert row["path"].startswith("sources/imagenet_a/files/")
    assert (isolated_home / row["path"]).is_file()
    assert row["id"].startswith("imagenet_a/imagenet-a/")  # same ids as from the archive


def test_wrong_sha256_fails_with_file_expected_actual(http_server, isolated_home):
    members, _ = imagenet_a_members()
    data = make_tar(members)
    url = http_server.add("imagenet-a.tar", data)
    wrong = "f" * 64
    res = CliRunner().invoke(main, ["build", "--source", "imagenet-a", "--url", url,
                                    "--sha256", wrong])
    assert res.exit_code == 1
    assert "imagenet-a.tar" in res.output and wrong in res.output
    assert hashlib.sha256(data).hexdigest() in res.output
    assert "Traceback" not in res.output
    downloads = isolated_home / "downloads"
    assert not any(p.name.startswith("imagenet-a.tar") for p in downloads.iterdir())
    assert not (isolated_home / "sources" / "imagenet_a.parquet").exists()


def test_cut_download_resumes_inside_a_build(http_server, isolated_home):
    members, exp = imagenet_a_members()
    members["imagenet-a/README.txt"] = b"read me\n" * 50_000  # 400 kB: the cut lands mid-way
    data = make_tar(members)
    url = http_server.add("imagenet-a.tar", data)
    http_server.cut_once.add("/imagenet-a.tar")
    sha = hashlib.sha256(data).hexdigest()
    res = cli_build("--source", "imagenet-a", "--url", url, "--sha256", sha)
    assert "kept" in res.output
    assert http_server.range_requests("imagenet-a.tar")
    assert (isolated_home / "downloads" / "imagenet-a.tar").read_bytes() == data


def test_tar_slip_archive_fails_the_build_cleanly(http_server, isolated_home, tmp_path):
    members = class_folder_members("imagenet-r", list(labels.imagenet_r_wnids()[:1]))
    members["imagenet-r/../../../escape.jpg"] = b"x"
    url = http_server.add("imagenet-r.tar", make_tar(members))
    res = CliRunner().invoke(main, ["build", "--source", "imagenet-r", "--url", url])
    assert res.exit_code == 1 and "escape" in res.output and "Traceback" not in res.output
    assert not (isolated_home / "sources" / "imagenet_r" / "files").exists()
    assert not list(tmp_path.rglob("escape.jpg"))


# --------------------------------------------------------------------------------------------
# ImageNet-R and ImageNet-Sketch


def test_imagenet_r_from_url(http_server, isolated_home):
    ws = list(labels.imagenet_r_wnids()[-2:])
    members = class_folder_members("imagenet-r", ws, per_class=3)
    members["imagenet-r/README.txt"] = b"readme"
    url = http_server.add("imagenet-r.tar", make_tar(members))
    cli_build("--source", "imagenet-r", "--url", url)
    rows = rows_of(isolated_home / "sources" / "imagenet_r.parquet")
    assert len(rows) == 6
    assert {r["label"][0] for r in rows.values()} == {labels.index_of(w) for w in ws}
    assert {r["label_space"] for r in rows.values()} == {"in_r_200"}
    assert set(labels.label_space_indices("in_r_200")) >= {r["label"][0] for r in rows.values()}


def test_imagenet_sketch_zip_and_folder(http_server, isolated_home, tmp_path):
    ws = [labels.wnids()[0], labels.wnids()[999]]
    members = class_folder_members("sketch", ws, ext="JPEG")
    members["sketch/n00000000/odd.JPEG"] = members[f"sketch/{ws[0]}/{ws[0]}_0.JPEG"]
    url = http_server.add("ImageNet-Sketch.zip", make_zip(members))
    res = cli_build("--source", "imagenet-sketch", "--url", url)
    assert "kept 4, rejected 1" in res.output
    rows = rows_of(isolated_home / "sources" / "imagenet_sketch.parquet")
    assert sorted(r["label"][0] for r in rows.values()) == [0, 0, 999, 999]
    # The same from an extracted folder (its parent given): same ids, rebuilt with --force.
    parent = write_members(tmp_path / "user", members)
    cli_build("--source", "imagenet-sketch", "--path", str(parent), "--force")
    assert set(rows_of(isolated_home / "sources" / "imagenet_sketch.parquet")) == set(rows)


def test_folder_without_the_layout_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match="imagenet-a/<wnid>/<image>"):
        build_source("imagenet-a", path=tmp_path / "empty")


# --------------------------------------------------------------------------------------------
# ImageNet validation and ReaL


def _val_setup():
    real = labels.real_labels()
    empty = next(i for i, r in enumerate(real) if not r) + 1  # a ReaL list that is empty
    multi = next(i for i, r in enumerate(real) if len(r) >= 2) + 1
    numbers = sorted({1, 2, 3, empty, multi})
    truth = {n: (real[n - 1][0] if real[n - 1] else 7) for n in numbers}
    truth[multi] = 5 if 5 not in real[multi - 1] else 6  # IN label outside ReaL: union grows
    return numbers, truth, empty, multi


def test_imagenet_val_tar_with_devkit_beside(tmp_path, isolated_home):
    numbers, truth, _, _ = _val_setup()
    order = ilsvrc_order()
    (tmp_path / "ILSVRC2012_img_val.tar").write_bytes(make_tar(val_images(numbers)))
    (tmp_path / "ILSVRC2012_devkit_t12.tar.gz").write_bytes(devkit_tar(truth, order))
    res = cli_build("--source", "imagenet", "--path", str(tmp_path / "ILSVRC2012_img_val.tar"))
    assert f"kept {len(numbers)}, rejected 0" in res.output
    assert "ILSVRC2012_devkit_t12.tar.gz" in res.output  # says where the labels came from
    rows = rows_of(isolated_home / "sources" / "imagenet.parquet")
    for n in numbers:
        assert rows[f"imagenet/ILSVRC2012_val_{n:08d}.JPEG"]["label"] == [truth[n]]


def test_imagenet_real_is_in_union_real(tmp_path, isolated_home):
    numbers, truth, empty, multi = _val_setup()
    folder = write_members(tmp_path / "val", val_images(numbers))
    (folder / "LOC_val_solution.csv").write_bytes(loc_csv(truth))
    table = build_source("imagenet-real", path=folder)
    rows = rows_of(table)
    real = labels.real_labels()
    for n in numbers:
        row = rows[f"imagenet_real/ILSVRC2012_val_{n:08d}.JPEG"]
        assert row["label"][0] == truth[n]
        assert set(row["label"]) == {truth[n], *real[n - 1]}
        assert row["origin"] == "imagenet" and row["label_space"] == "in1k"
    assert rows[f"imagenet_real/ILSVRC2012_val_{empty:08d}.JPEG"]["label"] == [truth[empty]]
    assert len(rows[f"imagenet_real/ILSVRC2012_val_{multi:08d}.JPEG"]["label"]) >= 3


def test_imagenet_folder_with_extracted_devkit_and_stray_file(tmp_path, isolated_home):
    numbers, truth, _, _ = _val_setup()
    order = ilsvrc_order()
    folder = write_members(tmp_path / "val", val_images(numbers))
    with tarfile.open(fileobj=io.BytesIO(devkit_tar(truth, order))) as tf:
        tf.extractall(folder, filter="data")
    (folder / "holiday.jpg").write_bytes(b"not a val image")
    table = build_source("imagenet", path=folder)
    rows = rows_of(table)
    assert {r["label"][0] for r in rows.values()} == set(truth.values())
    rej = rejects_of(isolated_home, "imagenet")
    assert list(rej) == ["sources/imagenet/files/holiday.jpg"]


def test_imagenet_from_mirror_url_with_labels_inside(http_server, isolated_home):
    numbers, truth, _, _ = _val_setup()
    members = val_images(numbers)
    members["LOC_val_solution.csv"] = loc_csv(truth)
    url = http_server.add("ILSVRC2012_img_val.tar", make_tar(members))
    res = cli_build("--source", "imagenet", "--url", url)
    assert f"kept {len(numbers)}, rejected 0" in res.output
    rows = rows_of(isolated_home / "sources" / "imagenet.parquet")
    got = {rid: row["label"] for rid, row in rows.items()}
    assert got == {f"imagenet/ILSVRC2012_val_{n:08d}.JPEG": [truth[n]] for n in numbers}
    assert {r["label_space"] for r in rows.values()} == {"in1k"}


def test_imagenet_pytorch_layout_without_label_file(tmp_path):
    w = labels.wnids()
    folder = tmp_path / "val"
    write_members(folder / w[3], val_images([1]))
    write_members(folder / w[9], val_images([2]))
    rows = rows_of(build_source("imagenet", path=folder))
    assert sorted(r["label"][0] for r in rows.values()) == [3, 9]


def test_imagenet_needs_path_and_says_how(isolated_home, tmp_path):
    res = CliRunner().invoke(main, ["build", "--source", "imagenet"])
    assert res.exit_code == 1
    for needle in ("--path ILSVRC2012_img_val.tar", "ILSVRC/imagenet-1k", "account"):
        assert needle in res.output
    (tmp_path / "ILSVRC2012_img_val.tar").write_bytes(make_tar(val_images([1, 2])))
    res = CliRunner().invoke(main, ["build", "--source", "imagenet", "--path",
                                    str(tmp_path / "ILSVRC2012_img_val.tar")])
    assert res.exit_code == 1 and "LOC_val_solution.csv" in res.output


# --------------------------------------------------------------------------------------------
# ObjectNet


@pytest.mark.parametrize("torch_map", [True, False], ids=["torch-map", "lemma-names"])
def test_objectnet_password_zip(http_server, isolated_home, torch_map):
    members, exp = objectnet_members(with_torch_map=torch_map)
    url = http_server.add("objectnet-1.0.zip", make_encrypted_zip(members, "objectnetisatestset"))
    res = cli_build("--source", "objectnet", "--url", url)
    assert f"kept {exp['rows']}, rejected {exp['rejects']}" in res.output
    assert f"{exp['outside']} images of classes outside" in res.output
    table = isolated_home / "sources" / "objectnet.parquet"
    rows = rows_of(table)
    for row in rows.values():
        folder = row["id"].split("/")[3]
        assert row["label"] == exp["labels"][folder]
        assert row["label_space"] == "objectnet_113"
    assert not any("squeegee" in i for i in rows)
    rej = rejects_of(isolated_home, "objectnet")
    assert list(rej.values())[0].startswith("unknown class folder 'mystery_object'")
    space = table_label_spaces(read_table(table))["objectnet_113"]
    assert space == sorted(i for v in exp["labels"].values() for i in v)
    assert labels.label_space_indices("objectnet_113", {"objectnet_113": space}) == tuple(space)


def test_objectnet_without_unzip_uses_zipfile(http_server, isolated_home, monkeypatch):
    from imagenet_hard import download

    monkeypatch.setattr(download.shutil, "which", lambda name: None)
    members, exp = objectnet_members()
    url = http_server.add("objectnet-1.0.zip", make_encrypted_zip(members, "objectnetisatestset"))
    res = cli_build("--source", "objectnet", "--url", url)
    assert "`unzip` is not on PATH" in res.output
    assert f"kept {exp['rows']}" in res.output


def test_path_archive_is_verified_when_sha256_given_and_never_deleted(tmp_path, isolated_home):
    from imagenet_hard.errors import ChecksumError

    members = class_folder_members("imagenet-r", list(labels.imagenet_r_wnids()[:2]))
    archive = tmp_path / "imagenet-r.tar"
    archive.write_bytes(make_tar(members))
    with pytest.raises(ChecksumError, match="expected 0{64}"):
        build_source("imagenet-r", path=archive, sha256="0" * 64)
    assert archive.is_file()  # the user's own file is reported, not removed
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    rows = rows_of(build_source("imagenet-r", path=archive, sha256=sha))
    assert len(rows) == 4
