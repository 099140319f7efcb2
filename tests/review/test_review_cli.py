"""`imhard review …` commands through click, on the sample run."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from review_support import make_sample_run

from imagenet_hard.cli import main
from imagenet_hard.records import DECISION_SCHEMA

CHELSEA = "sample/n02123045/chelsea.png"
COMMANDS = ["import", "status", "list", "decide", "undo", "history", "export", "apply", "serve"]


def run(*args, home=None):
    extra = ["--home", str(home)] if home else []
    res = CliRunner().invoke(main, ["review", *args, *extra])
    assert "Traceback" not in res.output
    return res


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_review_command_has_an_example(command):
    res = CliRunner().invoke(main, ["review", *([command] if command else []), "--help"])
    assert res.exit_code == 0
    assert "Example:" in res.output


def test_review_from_import_to_export(sample_run, tmp_path):
    res = run("import", "--run", sample_run.run)
    assert res.exit_code == 0, res.output
    assert "9 candidates under review (2 from objectnet, 7 from sample)" in res.output
    assert run("import", "--run", sample_run.run).exit_code == 0

    mug, tripod = sample_run.objectnet_ids
    res = run("decide", CHELSEA, mug, "--verdict", "remove", "--reason", "ill-posed",
              "--tags", "illusion,rare-case", "--note", "two cats", "--reviewer", "ann")
    assert res.exit_code == 0, res.output
    assert f"remove (ill-posed): {CHELSEA}" in res.output
    assert run("decide", tripod, "--verdict", "keep").exit_code == 0

    res = run("status")
    assert "9 candidates, 3 decided (33.3%), 3 events" in res.output
    assert "pending 6   keep 1   remove 2" in res.output
    assert "ill-posed" in res.output and "objectnet" in res.output

    res = run("list", "--verdict", "remove")
    assert CHELSEA in res.output and "tabby cat, tiger cat" in res.output
    assert "judge: Egyptian Mau 41%" in res.output
    assert run("list", "--verdict", "pending", "--limit", "2").output.count("label:") == 2

    res = run("undo")
    assert res.exit_code == 0 and f"of {tripod}; now pending" in res.output
    assert "undo of #3" in run("history").output

    out = tmp_path / "d.parquet"
    res = run("export", "--out", str(out))
    assert res.exit_code == 0 and "2 decisions" in res.output
    assert pq.read_schema(out).remove_metadata().equals(DECISION_SCHEMA)
    assert "0 decisions added, 2 already present" in run("apply", str(out)).output


def test_apply_into_another_home(sample_run, sample_home, tmp_path):
    run("import", "--run", sample_run.run)
    run("decide", CHELSEA, "--verdict", "keep")
    out = tmp_path / "d.parquet"
    run("export", "--out", str(out))
    other = make_sample_run(tmp_path / "elsewhere", sample_home)
    assert run("import", "--run", other.run, home=other.home).exit_code == 0
    res = run("apply", str(out), home=other.home)
    assert res.exit_code == 0 and "1 decisions added, 0 already present" in res.output
    assert "1 decisions added" not in run("apply", str(out), home=other.home).output


def test_errors_are_one_line_with_a_non_zero_exit(sample_run):
    res = run("import", "--run", "nope")
    assert res.exit_code == 1 and res.output.startswith("Error: no mining run 'nope'")
    assert res.output.rstrip().endswith("/mining: sample-run") and res.output.count("\n") == 1
    run("import", "--run", sample_run.run)
    res = run("decide", "sample/n00000000/ghost.png", "--verdict", "keep")
    assert res.exit_code == 1
    assert "unknown candidate id 'sample/n00000000/ghost.png'" in res.output
    res = run("decide", CHELSEA, "--verdict", "keep", "--tags", "fuzzy")
    assert res.exit_code == 1 and "lack-of-information, rare-case" in res.output
    res = run("decide", CHELSEA, "--verdict", "remove", "--reason", "meh")
    assert res.exit_code == 1 and "ill-posed, wrong-label, duplicate, other" in res.output
    assert run("decide", CHELSEA, "--verdict", "maybe").exit_code == 2  # click's own check
    res = run("undo")
    assert res.exit_code == 1 and "nothing to undo" in res.output
