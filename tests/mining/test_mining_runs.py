"""The mining-run handle: ``open_run``/``list_runs``, the typed record and summary, their checks."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from run_support import write_run

from imagenet_hard.errors import InvalidValueError, MissingFileError
from imagenet_hard.home import mining_dir
from imagenet_hard.mining import MiningRun, OriginCounts, RunSummary, list_runs, open_run
from imagenet_hard.mining.runs import SUMMARY_FILE
from imagenet_hard.records import write_table

CHELSEA = "sample/n02123045/chelsea.png"
COFFEE = "sample/n07920052/coffee.png"


@pytest.fixture
def run(sample_home, isolated_home) -> MiningRun:
    shutil.copytree(sample_home / "sources", isolated_home / "sources")
    cands = {i: {"top5": [1, 2, 3, 4, 5], "top5_prob": [0.5, 0.2, 0.1, 0.1, 0.1], "best_crop": 7}
             for i in (CHELSEA, COFFEE)}
    return write_run(isolated_home, "two-cats", ["sample"], cands)


def test_open_by_name_by_folder_and_listed(run, tmp_path, monkeypatch):
    by_name = open_run("two-cats")
    assert by_name == run and by_name.name == "two-cats" and open_run(run) is run
    assert open_run(str(run.dir)).dir == run.dir
    monkeypatch.chdir(run.dir.parent)
    assert open_run("./two-cats").record == run.record          # a relative folder
    assert list_runs() == ["two-cats"]
    s = by_name.summary
    assert (s.images, s.candidates, s.mode, s.exhaustive) == (9, 2, "early-exit", False)
    assert s.per_origin == {"sample": OriginCounts(images=9, candidates=2)}
    assert by_name.record.sources == ("sample",) and by_name.record.shards == 1
    assert sorted(by_name.candidates().column("id").to_pylist()) == [CHELSEA, COFFEE]
    assert by_name.results().num_rows == 9


def test_a_missing_run_names_itself_where_it_looked_and_what_exists(run, tmp_path):
    with pytest.raises(MissingFileError) as err:
        open_run("tow-cats")
    msg = str(err.value)
    assert "'tow-cats'" in msg and str(mining_dir() / "tow-cats" / "run.json") in msg
    assert msg.endswith(f"runs under {mining_dir()}: two-cats")
    with pytest.raises(MissingFileError, match="no runs under .* yet; make one with `imhard mine`"):
        open_run("anything", home=tmp_path / "empty")
    assert list_runs(tmp_path / "empty") == []


def test_an_unfinished_run_says_how_to_finish_it(run):
    (run.dir / SUMMARY_FILE).unlink()
    unfinished = open_run("two-cats")
    assert not unfinished.finished
    for read in (lambda: unfinished.summary, unfinished.candidates):
        with pytest.raises(MissingFileError, match="has not finished.*--run two-cats"):
            read()
    run.shard_path(0).unlink()
    with pytest.raises(MissingFileError, match="lacks 1 of 1 shards"):
        unfinished.results()


def test_summary_round_trips_and_rejects_what_mining_never_writes(run):
    data = run.summary.to_json()
    assert data["schema_version"] == 1 and len(data) == 24
    assert data["protocol"]["name"] == "paper" and data["protocol"]["objectnet_labels"] == "paper"
    assert RunSummary.from_json(json.loads(json.dumps(data)), run.dir) == run.summary
    legacy = {k: v for k, v in data.items() if k != "schema_version"}   # written before versions
    assert RunSummary.from_json(legacy, run.dir) == run.summary
    unrecorded = {k: v for k, v in data.items() if k != "protocol"}    # before protocols
    assert RunSummary.from_json(unrecorded, run.dir).protocol is None
    bad = [
        ({**data, "exhaustive": True}, "unknown: exhaustive"),
        ({k: v for k, v in data.items() if k != "mode"}, "missing: mode"),
        ({**data, "mode": "greedy"}, "mode must be one of early-exit, exhaustive"),
        ({**data, "candidates": 10}, "candidates must be at most the 9 images"),
        ({**data, "schema_version": 2}, "schema_version must be 1"),
        ({**data, "images": "9"}, "images must be a whole number"),
        ({**data, "per_origin": {"sample": {"images": 8, "candidates": 2}}},
         "per_origin must add up to 9 images and 2 candidates"),
        ({**data, "per_origin": {"sample": {"images": 9}}}, "per_origin entries must hold"),
        ({**data, "protocol": {"name": "paper"}}, "a protocol holds name, normalization"),
        ({**data, "protocol": {**data["protocol"], "precision": "fp8"}}, "unknown precision"),
        ([data], "not a JSON object"),
    ]
    for value, message in bad:
        with pytest.raises(InvalidValueError, match=message):
            RunSummary.from_json(value, run.dir / SUMMARY_FILE)


def test_a_damaged_file_fails_when_opened_naming_it(run):
    (run.dir / SUMMARY_FILE).write_text(json.dumps({**run.summary.to_json(), "seconds": -1}))
    with pytest.raises(InvalidValueError, match=rf"{SUMMARY_FILE}: seconds must be a number ≥ 0"):
        _ = open_run("two-cats").summary
    record = run.dir / "run.json"
    record.write_text(json.dumps({**run.record.to_json(), "shards": 5}))
    with pytest.raises(InvalidValueError, match=r"run.json: shards must be ceil\(images / shard_"):
        open_run("two-cats")
    record.write_text("{not json")
    with pytest.raises(InvalidValueError, match="run.json is unreadable"):
        open_run("two-cats")


def test_candidates_listing_an_id_twice_are_refused(run):
    rows = run.candidates().to_pylist()
    write_table(rows + rows[:1], run.candidates().schema, run.candidates_path)
    with pytest.raises(InvalidValueError, match=f"lists {rows[0]['id']} twice"):
        open_run("two-cats").candidates()


def test_resuming_with_other_settings_names_each_difference(run):
    other = MiningRun(run.dir, dataclasses.replace(run.record, judge="timm:resnet50",
                                                   exhaustive=True))
    with pytest.raises(InvalidValueError, match="judge: run has 'efficientnet-lite0', asked "
                                                "'timm:resnet50'; exhaustive"):
        other.check_resumable()
    assert run.check_resumable()
