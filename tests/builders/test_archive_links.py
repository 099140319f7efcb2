"""Links never take extraction or indexing outside the data home (issue 9, defect 1).

Archives with any link are refused before anything is written (no dataset archive ships one);
the file walk of a --path folder skips, as rejects, links whose resolved target leaves the
folder. An audit hook records every file and folder the build opens, so "nothing outside was
read" is checked, not assumed.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile

import duckdb
import pytest
from click.testing import CliRunner
from source_archives import (
    class_folder_members,
    image_bytes,
    make_encrypted_zip,
    objectnet_members,
    write_members,
)

from imagenet_hard import build_source, labels
from imagenet_hard import download as dl
from imagenet_hard.cli import main

PASSWORD = "objectnetisatestset"
#: The chain from the issue: x resolves to the extraction folder itself, so every link looks
#: inside when read as text, yet images/banana leads four levels up, out of the data home.
CHAIN = {"objectnet-1.0/a/b/c/x": "../../../..",
         "objectnet-1.0/images/banana": "../a/b/c/x/../../../../outside"}

_OPENED: list[list[str]] = []


def _audit(event, args):
    if _OPENED and event in ("open", "os.scandir", "os.listdir") and args \
            and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED[-1].append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # records only while a test holds a list in _OPENED


@pytest.fixture
def opened():
    """Every path the code under test opens or lists, while the test runs."""
    seen: list[str] = []
    _OPENED.append(seen)
    yield seen
    _OPENED.remove(seen)


@pytest.fixture
def outside(tmp_path):
    """A folder beside the data home holding an image the build must never see."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.png").write_bytes(image_bytes(99, fmt="PNG"))
    return folder


def read_outside(paths: list[str], outside) -> list[str]:
    real = os.path.realpath(outside)
    return [p for p in paths if os.path.realpath(p).startswith(real)]


def build_fails(*args) -> str:
    res = CliRunner().invoke(main, ["build", *args])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 1, res.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    return lines[0]


def assert_nothing_left(home, name):
    src = home / "sources"
    assert not (src / f"{name}.parquet").exists()
    assert not src.exists() or not any(p.is_symlink() for p in src.rglob("*"))


@pytest.mark.parametrize("with_unzip", [True, False], ids=["unzip", "zipfile"])
def test_objectnet_zip_with_the_link_chain_is_refused(tmp_path, isolated_home, outside,
                                                      opened, monkeypatch, with_unzip):
    if with_unzip and dl.shutil.which("unzip") is None:
        pytest.skip("unzip is not installed on this machine")
    if not with_unzip:
        monkeypatch.setattr(dl.shutil, "which", lambda name: None)
    members, _ = objectnet_members()
    members = {k: v for k, v in members.items() if "/banana/" not in k}
    archive = tmp_path / "objectnet-1.0.zip"
    archive.write_bytes(make_encrypted_zip(members, PASSWORD, links=CHAIN))
    line = build_fails("--source", "objectnet", "--path", str(archive))
    assert "'objectnet-1.0/a/b/c/x' is a symbolic link" in line
    assert read_outside(opened, outside) == []
    assert_nothing_left(isolated_home, "objectnet")
    assert sorted(os.listdir(outside)) == ["secret.png"]


@pytest.mark.parametrize("host", [2, 3, 5, 16, 30], ids=["vms", "unix", "atari", "beos",
                                                          "atheos"])
def test_zip_link_is_refused_whatever_system_made_it(tmp_path, host):
    # unzip restores links from members "made by" any of these systems, not only Unix.
    archive = tmp_path / "evil.zip"
    archive.write_bytes(make_encrypted_zip({"top/ok.txt": b"ok"}, "pw",
                                           links={"top/l": "../../.."}, host=host))
    with pytest.raises(dl.UnsafeArchiveError, match="'top/l' is a symbolic link"):
        dl.extract(archive, tmp_path / "out", password="pw")
    assert sorted(os.listdir(tmp_path)) == ["evil.zip"]


def _tar(members: dict[str, bytes], links: dict[str, tuple[bytes, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (kind, target) in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("links, what", [
    ({"imagenet-a/a/b/c/x": (tarfile.SYMTYPE, "../../../.."),
      "imagenet-a/{w}": (tarfile.SYMTYPE, "a/b/c/x/../../../../outside")}, "symbolic link"),
    ({"imagenet-a/{w}": (tarfile.SYMTYPE, "../../../../outside")}, "symbolic link"),
    ({"imagenet-a/{w}/copy.jpg": (tarfile.LNKTYPE, "imagenet-a/{w0}/{w0}_0.jpg")}, "hard link"),
], ids=["chain", "class-folder", "hard-link"])
def test_tar_with_a_linked_class_folder_is_refused(tmp_path, isolated_home, outside, opened,
                                                   links, what):
    w0, w = labels.imagenet_a_wnids()[:2]
    members = class_folder_members("imagenet-a", [w0])
    links = {k.format(w=w, w0=w0): (kind, t.format(w=w, w0=w0))
             for k, (kind, t) in links.items()}
    archive = tmp_path / "imagenet-a.tar"
    archive.write_bytes(_tar(members, links))
    line = build_fails("--source", "imagenet-a", "--path", str(archive))
    assert f"is a {what}" in line
    assert read_outside(opened, outside) == []
    assert_nothing_left(isolated_home, "imagenet-a")


def test_path_folder_that_is_a_symlink_is_allowed(tmp_path, isolated_home):
    wnids = list(labels.imagenet_a_wnids()[:2])
    real = write_members(tmp_path / "disk2" / "datasets",
                         class_folder_members("imagenet-a", wnids))
    linked = tmp_path / "linked"
    linked.symlink_to(real, target_is_directory=True)
    table = build_source("imagenet-a", path=linked)
    rows = duckdb.sql(f"select path from read_parquet('{table}')").fetchall()
    assert len(rows) == 4
    assert all(p.startswith("sources/imagenet_a/files/imagenet-a/") for (p,) in rows)


def test_links_out_of_a_path_folder_are_rejects_and_never_read(tmp_path, isolated_home, outside,
                                                               opened):
    w0, w1, w2 = labels.imagenet_a_wnids()[:3]
    real = write_members(tmp_path / "user", class_folder_members("imagenet-a", [w0]))
    top = real / "imagenet-a"
    (top / "a/b/c").mkdir(parents=True)
    (top / "a/b/c/x").symlink_to("../../../..")           # the chain, as unzip leaves it
    (top / w1).symlink_to(f"a/b/c/x/../{outside.name}")  # looks inside, leads out
    (top / w2).mkdir()
    (top / w2 / "secret.jpg").symlink_to(outside / "secret.png")  # a file link out
    (top / w2 / "inside.jpg").symlink_to(f"../{w0}/{w0}_0.jpg")   # a link inside: followed
    os.mkfifo(top / w2 / "pipe.jpg")                             # reading it would hang
    assert os.path.realpath(top / w1) == str(outside)
    res = build_source("imagenet-a", path=real)
    rows = {p for (p,) in duckdb.sql(f"select path from read_parquet('{res}')").fetchall()}
    base = "sources/imagenet_a/files/imagenet-a"
    assert rows == {f"{base}/{w0}/{w0}_0.jpg", f"{base}/{w0}/{w0}_1.jpg",
                    f"{base}/{w2}/inside.jpg"}
    rejects = dict(duckdb.sql("select path, reason from read_parquet("
                              f"'{isolated_home}/sources/imagenet_a.rejects.parquet')").fetchall())
    assert rejects[f"{base}/{w1}"].startswith("a link that leads outside the source folder")
    assert rejects[f"{base}/{w2}/secret.jpg"].startswith("a link that leads outside")
    assert rejects[f"{base}/{w2}/pipe.jpg"].startswith("not a regular file")
    assert read_outside(opened, outside) == []


@pytest.mark.parametrize("link", ["objectnet-1.0/images", "objectnet-1.0/mappings",
                                  "objectnet-1.0/mappings/folder_to_objectnet_label.json"])
def test_objectnet_folder_whose_images_or_mappings_lead_out_is_refused(tmp_path, isolated_home,
                                                                       opened, link):
    members, _ = objectnet_members()
    elsewhere = write_members(tmp_path / "elsewhere", members)  # a full copy, outside --path
    user = write_members(tmp_path / "user", {k: v for k, v in members.items()
                                             if not k.startswith(link + "/") and k != link})
    (user / link).symlink_to(elsewhere / link)
    opened.clear()  # what the test itself wrote does not count
    line = build_fails("--source", "objectnet", "--path", str(user))
    assert "is a link that leads outside the source folder" in line
    assert read_outside(opened, elsewhere) == []
    assert not (isolated_home / "sources" / "objectnet.parquet").exists()


def test_class_folder_top_that_leads_out_is_refused(tmp_path, isolated_home, opened):
    wnids = list(labels.imagenet_a_wnids()[:2])
    elsewhere = write_members(tmp_path / "disk2", class_folder_members("imagenet-a", wnids))
    user = tmp_path / "user"
    user.mkdir()
    (user / "imagenet-a").symlink_to(elsewhere / "imagenet-a")
    opened.clear()
    line = build_fails("--source", "imagenet-a", "--path", str(user))
    assert "pass the folder it points to as --path" in line
    assert read_outside(opened, elsewhere) == []
    # Which is what the user then does: a --path folder is theirs to choose, links and all.
    table = build_source("imagenet-a", path=elsewhere / "imagenet-a")
    assert duckdb.sql(f"select count(*) from read_parquet('{table}')").fetchall() == [(4,)]


def test_review_serves_images_of_a_linked_path_folder_and_nothing_outside(tmp_path, isolated_home,
                                                                          outside):
    """A --path folder is linked into the home, so review follows that one link (and only it)."""
    from imagenet_hard.review.images import UnsafePathError, resolve_image

    wnids = list(labels.imagenet_a_wnids()[:2])
    real = write_members(tmp_path / "disk2" / "datasets", class_folder_members("imagenet-a", wnids))
    table = build_source("imagenet-a", path=real)
    ((rel,),) = duckdb.sql(f"select path from read_parquet('{table}') limit 1").fetchall()
    assert resolve_image(isolated_home, rel) == (isolated_home / rel).resolve()
    assert str(resolve_image(isolated_home, rel)).startswith(str(real.resolve()))
    # a link planted in the user's folder after the build still may not lead out of it
    planted = real / "imagenet-a" / wnids[0] / "planted.jpg"
    planted.symlink_to(outside / "secret.png")
    with pytest.raises(UnsafePathError):
        resolve_image(isolated_home, f"sources/imagenet_a/files/imagenet-a/{wnids[0]}/planted.jpg")
    for bad in ("../outside/secret.png", "/etc/hostname", "sources/../../x.png"):
        with pytest.raises(UnsafePathError):
            resolve_image(isolated_home, bad)
