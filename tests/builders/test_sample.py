import duckdb
from click.testing import CliRunner

from imagenet_hard import build_source, labels
from imagenet_hard.cli import main


def test_sample_builds_offline_with_checked_labels(isolated_home):
    table = build_source("sample")
    rows = duckdb.sql(f"select * from read_parquet('{table}') order by id").fetchall()
    cols = [d[0] for d in duckdb.sql(f"select * from read_parquet('{table}')").description]
    assert cols == ["id", "origin", "path", "label", "english_label", "label_space", "width",
                    "height", "sha256", "label_paper"]
    by_id = {r[0]: dict(zip(cols, r, strict=True)) for r in rows}
    chelsea = by_id["sample/n02123045/chelsea.png"]
    assert chelsea["label"] == [281, 282]
    assert labels.wnids()[281] == "n02123045"
    assert chelsea["english_label"] == ["tabby cat", "tiger cat"]
    assert (chelsea["width"], chelsea["height"]) == (451, 300)
    assert all((isolated_home / r["path"]).is_file() for r in by_id.values())


def test_rebuild_is_a_no_op_unless_forced(isolated_home):
    runner = CliRunner()
    first = runner.invoke(main, ["build", "--source", "sample"])
    assert first.exit_code == 0, first.output
    assert "kept 9, rejected 0" in first.output
    again = runner.invoke(main, ["build", "--source", "sample"])
    assert "already built" in again.output
    forced = runner.invoke(main, ["build", "--source", "sample", "--force"])
    assert "kept 9" in forced.output


def test_unknown_source_lists_close_matches():
    res = CliRunner().invoke(main, ["build", "--source", "imagenet_smaple"])
    assert res.exit_code != 0
    assert "sample" in res.output
