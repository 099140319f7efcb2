import hashlib
import os
import re

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


OLD = 1_000_000_000  # a mtime no build writes: any rewrite of a file shows


def files_under(home):
    """{relative path: (sha256, mtime_ns)} of every file in the data home."""
    return {str(p.relative_to(home)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                       p.stat().st_mtime_ns)
            for p in sorted(home.rglob("*")) if p.is_file()}


def test_rebuild_is_a_no_op_unless_forced(isolated_home):
    runner = CliRunner()
    first = runner.invoke(main, ["build", "--source", "sample"])
    assert first.exit_code == 0, first.output
    assert "kept 9, rejected 0" in first.output
    for f in isolated_home.rglob("*"):
        if f.is_file():
            os.utime(f, ns=(OLD, OLD))
    built = files_under(isolated_home)
    assert "sources/sample.parquet" in built and len(built) >= 10  # the table and 9 photos
    again = runner.invoke(main, ["build", "--source", "sample"])
    assert again.exit_code == 0, again.output
    assert "already built" in again.output
    assert files_under(isolated_home) == built  # nothing written: same bytes, same mtimes
    forced = runner.invoke(main, ["build", "--source", "sample", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "kept 9" in forced.output
    rebuilt = files_under(isolated_home)
    assert rebuilt.keys() == built.keys()
    assert {k: h for k, (h, _) in rebuilt.items()} == {k: h for k, (h, _) in built.items()}
    assert rebuilt["sources/sample.parquet"][1] != OLD  # --force did write the table again


def did_you_mean(text: str) -> list[str]:
    """The close matches an error suggests (its ``Did you mean: ...?`` part), not the ``Known:``
    list that follows it."""
    found = re.search(r"Did you mean: ([^?]*)\?", text)
    assert found, text
    return [s.strip() for s in found.group(1).split(",")]


def test_unknown_source_lists_close_matches():
    res = CliRunner().invoke(main, ["build", "--source", "imagenet_smaple"])
    assert res.exit_code != 0
    assert "sample" in res.output
    assert all(s.startswith("imagenet-") for s in did_you_mean(res.output))
    typo = CliRunner().invoke(main, ["build", "--source", "smaple"])
    assert typo.exit_code != 0
    assert did_you_mean(typo.output) == ["sample"]
