"""Paths read from project tables never lead outside the data home (issue 19, hole 4).

A source table is a file anyone with write access to the home can edit; its ``path`` column is
joined to the home by publish, mine, review, suite scoring and ``folder_from_source``. Each must
refuse a row that leads out, in one sentence, before it writes or copies anything.
"""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError, OutsideHomeError
from imagenet_hard.files import sha256_file
from imagenet_hard.home import inside_home

CHELSEA = "sample/n02123045/chelsea.png"


def _outside(home):
    """A real image beside the data home, which a tampered row points at."""
    src = next((home / "sources" / "sample").rglob("chelsea.png"))
    dest = home.parent / "outside" / "secret.png"
    dest.parent.mkdir(exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def _bad_paths(home, outside):
    """The three ways out: absolute, ``..`` from the home, ``..`` from inside it."""
    return [str(outside), "../outside/secret.png", "sources/../../outside/secret.png"]


def _tamper(home, row_id: str, path: str, sha256: str) -> None:
    """Point ``row_id`` of the sample table at ``path`` (with that file's hash, as an attacker
    who can edit the table would), keeping the table's schema and metadata."""
    file = home / "sources" / "sample.parquet"
    table = pq.read_table(file)
    rows = table.column("id").to_pylist()
    k = rows.index(row_id)
    paths = table.column("path").to_pylist()
    shas = table.column("sha256").to_pylist()
    paths[k], shas[k] = path, sha256
    table = table.set_column(table.schema.get_field_index("path"), table.schema.field("path"),
                             pa.array(paths, pa.string()))
    table = table.set_column(table.schema.get_field_index("sha256"), table.schema.field("sha256"),
                             pa.array(shas, pa.string()))
    pq.write_table(table, file)


def _one_sentence(text: str, bad: str) -> None:
    assert "\n" not in text.strip() and "Traceback" not in text
    assert "outside the data home" in text and "imhard build --force" in text
    assert repr(bad) in text


@pytest.mark.parametrize("rel", ["/etc/hostname", "../x.png", "sources/../../x.png",
                                 "sources/a/../b.png", "", ".", None, "a\x00b"])
def test_the_helper_refuses_anything_that_could_lead_out(tmp_path, rel):
    with pytest.raises(OutsideHomeError, match=r"source table 'sample' row 'r': path .* leads "
                                               r"outside the data home; rebuild the source"):
        inside_home(tmp_path, rel, "source table 'sample' row 'r'")


def test_the_helper_keeps_plain_paths_and_links_inside_the_home(tmp_path):
    home = tmp_path / "home"
    elsewhere = tmp_path / "disk2"
    elsewhere.mkdir()
    (home / "sources").mkdir(parents=True)
    (home / "sources" / "linked").symlink_to(elsewhere)   # a --path folder, linked on purpose
    assert inside_home(home, "sources/./linked//a.png", "t") == home / "sources/linked/a.png"
    # an InvalidValueError, so every caller's `except InvalidValueError` still answers it
    assert issubclass(OutsideHomeError, InvalidValueError)


def test_publish_refuses_a_table_that_leads_out_and_copies_nothing(sample_run):
    from imagenet_hard.publish import publish

    home = sample_run.home
    outside = _outside(home)
    for bad in _bad_paths(home, outside):
        _tamper(home, CHELSEA, bad, sha256_file(outside))
        out = home / "dist" / "imagenet-hard"
        with pytest.raises(OutsideHomeError) as err:
            publish(sample_run.run, None, out, include_pending=True, home=home)
        _one_sentence(str(err.value), bad)
        assert "source table 'sample'" in str(err.value) and CHELSEA in str(err.value)
        assert not (home / "dist").exists()


def test_cli_publish_says_it_in_one_line(sample_run):
    home = sample_run.home
    outside = _outside(home)
    _tamper(home, CHELSEA, "../outside/secret.png", sha256_file(outside))
    res = CliRunner().invoke(main, ["publish", "--run", sample_run.run, "--include-pending"])
    assert res.exit_code == 1
    _one_sentence(res.output, "../outside/secret.png")
    assert not (home / "dist").exists()


def test_mine_refuses_a_table_that_leads_out_before_judging(sample_run):
    from imagenet_hard.judges import ScriptedJudge
    from imagenet_hard.mining import mine

    home = sample_run.home
    outside = _outside(home)
    seen = []

    def never_right(crops):
        seen.append(crops.shape[0])
        return torch.zeros(crops.shape[0], dtype=torch.long)

    shutil.rmtree(home / "mining")
    for bad in _bad_paths(home, outside):
        _tamper(home, CHELSEA, bad, sha256_file(outside))
        with pytest.raises(OutsideHomeError) as err:
            mine(["sample"], ScriptedJudge(never_right), home=home, device="cpu", workers=0,
                 batch_size=512, run="tampered")
        _one_sentence(str(err.value), bad)
        assert not seen and not (home / "mining").exists()


def test_a_scoring_folder_from_a_tampered_table_is_refused(sample_run, tmp_path):
    from imagenet_hard.score.sets import folder_from_source

    home = sample_run.home
    outside = _outside(home)
    _tamper(home, CHELSEA, "../outside/secret.png", sha256_file(outside))
    with pytest.raises(OutsideHomeError) as err:
        folder_from_source(home / "sources" / "sample.parquet", tmp_path / "ds", home=home)
    _one_sentence(str(err.value), "../outside/secret.png")
    assert not (tmp_path / "ds").exists()


def test_suite_images_refuse_a_table_that_leads_out(sample_run):
    from imagenet_hard.score.sets import table_images

    home = sample_run.home
    outside = _outside(home)
    with pytest.raises(OutsideHomeError) as err:
        table_images(["../outside/secret.png"], [sha256_file(outside)], "sample", home)
    _one_sentence(str(err.value), "../outside/secret.png")
    assert "row 0 of sample" in str(err.value)
