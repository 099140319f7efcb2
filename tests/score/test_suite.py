"""`imhard score --suite`: which sets, one child for all of them, resuming after a kill, the suite
result and `imhard verify`, and what the sandboxed child can and cannot read."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest
import suite_data as sd
from click.testing import CliRunner

from imagenet_hard.cli import main
from imagenet_hard.errors import (
    InvalidValueError,
    MissingFileError,
    SubmissionError,
    UnknownNameError,
)
from imagenet_hard.score import RunOptions, score
from imagenet_hard.score.sets import write_folder
from imagenet_hard.score.suite import load_suite, resolve_sets, score_suite, verify_suite

OPTS = RunOptions(batch_size=1, workers=0)


def _published(home):
    """A published ImageNet-Hard of two coded photos at its default place: one right, one wrong."""
    images = [sd.coded_photo(30, [7, 1, 2, 3, 4], 80), sd.coded_photo(31, [8, 1, 2, 3, 4], 80)]
    return write_folder(home / "dist" / "imagenet-hard", images, [[7], [9]],
                        ["imagenet", "objectnet"], ["h/0", "h/1"])


def test_cli_scores_every_built_set_and_the_release(tmp_path, isolated_home):
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    sd.build_objectnet(isolated_home, tmp_path / "src")
    _published(isolated_home)
    sub = sd.write_submission(tmp_path / "subs")
    res = CliRunner().invoke(main, ["score", str(sub), "--suite", "--batch-size", "2", "-q"])
    assert res.exit_code == 0, res.output
    out = isolated_home / "scores" / "controlled.suite.json"
    raw = json.loads(out.read_text())
    assert [s["name"] for s in raw["sets"]] == ["imagenet-a", "objectnet", "imagenet-hard"]
    assert [s["protocol"] for s in raw["sets"]] == ["in-a-200", "objectnet", "imagenet-hard"]
    hard = raw["sets"][2]
    assert (hard["metrics"]["n"], hard["metrics"]["correct"]) == (2, 1)
    for s in raw["sets"]:
        assert (out.parent / s["predictions"]["file"]).is_file()
        assert len(s["dataset"]["fingerprint"]) == 64
    assert "imagenet-a" in res.output and "objectnet" in res.output
    # The suite's ImageNet-Hard number is on the release's own fingerprint: it ranks with a plain
    # `imhard score` of the same data.
    single = score(sub, home=isolated_home, out=tmp_path / "single.json", options=OPTS)
    assert single.result.dataset["fingerprint"] == hard["dataset"]["fingerprint"]
    assert single.result.metrics["accuracy"] == hard["metrics"]["accuracy"]


def test_a_killed_suite_resumes_without_predicting_finished_rows_again(
        tmp_path, isolated_home, monkeypatch):
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    sd.build_objectnet(isolated_home, tmp_path / "src")
    sub = sd.write_submission(tmp_path / "subs")
    # ObjectNet's rows in id order: alarm_clock, banana, bicycle, chair. The child kills itself
    # on the chair photo (top-1 559): ImageNet-A's 3 rows and ObjectNet's first 3 are done.
    monkeypatch.setenv("IMHARD_TEST_CRASH_AT", "559")
    with pytest.raises(SubmissionError, match="died from signal SIGKILL.*of set objectnet"):
        score_suite(sub, home=isolated_home, options=OPTS)
    caches = sorted((isolated_home / "scores" / "cache").iterdir())
    parts = {c.name: sorted((c / "parts").glob("part-*.top5")) for c in caches}
    assert sorted(len(p) for p in parts.values()) == [3, 3]
    stamps = {p: p.stat().st_mtime_ns for ps in parts.values() for p in ps}
    monkeypatch.delenv("IMHARD_TEST_CRASH_AT")
    run = score_suite(sub, home=isolated_home, options=OPTS)
    assert (run.predicted, run.scored) == (1, 7)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # finished parts untouched
    on = run.result.entry("objectnet")["metrics"]
    assert (on["n"], on["correct"]) == (4, 3)
    again = score_suite(sub, home=isolated_home, options=OPTS)
    assert again.predicted == 0


def test_verify_re_runs_every_set_and_catches_edits(tmp_path, isolated_home):
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    sd.write_imagenet_c(isolated_home)
    sub = sd.write_submission(tmp_path / "subs")
    run = score_suite(sub, home=isolated_home, out=tmp_path / "r.suite.json",
                      options=RunOptions(batch_size=2, workers=0))
    res = CliRunner().invoke(main, ["verify", str(run.path), "--sample", "2", "--batch-size", "2",
                                    "-q"])
    assert res.exit_code == 0, res.output
    assert "PASS: 4 sets re-checked" in res.output
    assert "imagenet-c/fog/1: PASS: re-ran 2 sampled rows" in res.output
    # A claimed number its predictions do not support.
    raw = json.loads(run.path.read_text())
    raw["sets"][0]["metrics"]["correct"] = 3
    raw["sets"][0]["metrics"]["accuracy"] = 1.0
    raw["imagenet_c"]["mean_error_benchmark"] = 0.1
    edited = tmp_path / "edited.suite.json"
    edited.write_text(json.dumps(raw))
    report = verify_suite(edited, sample=1, home=isolated_home, options=OPTS)
    assert not report.passed
    text = report.summary()
    assert "metrics.accuracy: claimed 1.0" in text and "mean_error_benchmark" in text
    # Predictions changed after scoring.
    pred = run.path.parent / raw["sets"][1]["predictions"]["file"]
    table = pq.read_table(pred)
    pq.write_table(table.slice(0, 1), pred)
    with pytest.raises(InvalidValueError, match="changed after scoring"):
        verify_suite(run.path, sample=1, home=isolated_home, options=OPTS)


def test_verify_refuses_a_table_that_is_not_the_one_scored(tmp_path, isolated_home):
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    sub = sd.write_submission(tmp_path / "subs")
    run = score_suite(sub, home=isolated_home, out=tmp_path / "r.suite.json", options=OPTS)
    folder = tmp_path / "src" / "in-a" / "imagenet-a" / sd.in_a_wnid(1)[0]
    (folder / "extra.png").write_bytes(sd.coded_photo(9, [sd.A1, 0, 1, 2, 3], 50))
    from imagenet_hard.sources import build

    build("imagenet-a", home=isolated_home, path=tmp_path / "src" / "in-a", force=True)
    with pytest.raises(InvalidValueError, match="set imagenet-a here has fingerprint"):
        verify_suite(run.path, sample=1, home=isolated_home, options=OPTS)


def test_an_image_changed_in_place_after_its_first_run_is_refused(tmp_path, isolated_home):
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    sub = sd.write_submission(tmp_path / "subs")
    score_suite(sub, home=isolated_home, options=OPTS, limit=2)  # rows 0 and 1 of 3
    photo = next((tmp_path / "src" / "in-a").rglob("plain.png"))  # row 2
    with open(photo, "r+b") as f:  # same file, new bytes: the hard link sees them too
        f.seek(-8, os.SEEK_END)
        f.write(b"\0" * 8)
    os.utime(photo, ns=(1, 1))
    with pytest.raises(InvalidValueError, match="changed after it was built"):
        score_suite(sub, home=isolated_home, options=OPTS)


#: Reads the paths in IMHARD_TEST_PEEK_AT; answers class 1 for every image if any was readable.
PEEK = '''
import os
import numpy as np

def _readable():
    for path in os.environ["IMHARD_TEST_PEEK_AT"].split(":"):
        try:
            with open(path, "rb") as f:
                f.read(1)
            return True
        except OSError:
            pass
    return False

class Peek:
    def predict(self, images):
        out = np.zeros((len(images), 1000))
        out[:, 1 if _readable() else 2] = 1.0
        return out

def load(device):
    return Peek()
'''


def test_the_child_sees_images_but_no_labels(tmp_path, isolated_home, monkeypatch):
    sd.build_imagenet_val(isolated_home, tmp_path / "src")
    secrets = [isolated_home / "sources" / "imagenet.parquet",
               isolated_home / "sources" / "imagenet" / "files" / "LOC_val_solution.csv",
               tmp_path / "src" / "val" / "LOC_val_solution.csv"]
    assert all(p.is_file() for p in secrets)
    monkeypatch.setenv("IMHARD_TEST_PEEK_AT", ":".join(map(str, secrets)))
    sub = sd.write_submission(tmp_path / "subs", PEEK, "peek.py")
    run = score_suite(sub, sets=["imagenet"], home=isolated_home, options=OPTS)
    preds = pq.read_table(run.path.parent / run.result.sets[0]["predictions"]["file"])
    assert {t[0] for t in preds.column("top5").to_pylist()} == {2}
    # Unconfined, the same code reads them: the sandbox is what hides them. (Another file, so
    # that the first run's cached answers are not reused.)
    sub = sd.write_submission(tmp_path / "subs", PEEK + "# unconfined\n", "peek2.py")
    loose = score_suite(sub, sets=["imagenet"], home=isolated_home, out=tmp_path / "loose.json",
                        options=RunOptions(batch_size=1, workers=0, sandbox="none"))
    preds = pq.read_table(loose.path.parent / loose.result.sets[0]["predictions"]["file"])
    assert {t[0] for t in preds.column("top5").to_pylist()} == {1}


def test_set_names_are_checked(tmp_path, isolated_home):
    with pytest.raises(MissingFileError, match="no set to score"):
        resolve_sets(home=isolated_home)
    sd.write_imagenet_c(isolated_home)
    names = [s.name for s in resolve_sets(["imagenet-c/fog"], home=isolated_home)]
    assert names == ["imagenet-c/fog/1", "imagenet-c/fog/2"]
    assert len(resolve_sets(["imagenet_c"], home=isolated_home)) == 3
    with pytest.raises(UnknownNameError, match="Did you mean: imagenet-c/fog/2, imagenet-c/fog/1"):
        resolve_sets(["imagenet-c/fog/3"], home=isolated_home)
    res = CliRunner().invoke(main, ["score", str(tmp_path / "x.py"), "--baseline", "b.json"])
    assert res.exit_code != 0 and "--baseline only applies with --suite" in res.output


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["sets"][0]["predictions"].update(file="../../outside.parquet"), "no folders"),
    (lambda r: r["sets"][0].update(protocol="made-up"), "unknown protocol"),
    (lambda r: r["sets"].append(dict(r["sets"][0])), "lists a set twice"),
    (lambda r: r["sets"][0].update(name="imagenet-c/../x"), "not a set name"),
    (lambda r: r.update(kind="single"), "suite result kind"),
    (lambda r: r["metadata"].update(url="javascript:alert(1)"), "http"),
])
def test_hostile_suite_results_are_refused(tmp_path, isolated_home, edit, message):
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    sub = sd.write_submission(tmp_path / "subs")
    run = score_suite(sub, home=isolated_home, out=tmp_path / "r.suite.json",
                      options=RunOptions(batch_size=3, workers=0))
    raw = json.loads(run.path.read_text())
    edit(raw)
    bad = tmp_path / "bad.suite.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(InvalidValueError, match=message):
        load_suite(bad)


def test_verify_finds_the_published_set_where_it_was_scored(tmp_path, isolated_home):
    images = [sd.coded_photo(30, [7, 1, 2, 3, 4], 80), sd.coded_photo(31, [8, 1, 2, 3, 4], 80)]
    folder = write_folder(tmp_path / "elsewhere", images, [[7], [9]], ["imagenet"] * 2,
                          ["h/0", "h/1"])
    sub = sd.write_submission(tmp_path / "subs")
    run = score_suite(sub, sets=["imagenet-hard"], dataset=folder, home=isolated_home,
                      options=OPTS)
    assert run.result.entry("imagenet-hard")["dataset"]["source"] == str(folder.resolve())
    assert verify_suite(run.path, sample=2, home=isolated_home, options=OPTS).passed
