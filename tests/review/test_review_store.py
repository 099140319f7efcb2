"""The review store: import, append-only decisions, undo, export/apply, validation."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pyarrow.parquet as pq
import pytest
from review_support import make_sample_run

from imagenet_hard.errors import (
    ImHardError,
    InvalidValueError,
    MissingFileError,
    UnknownNameError,
)
from imagenet_hard.records import DECISION_SCHEMA, write_table
from imagenet_hard.review import ReviewStore, current_decisions

CHELSEA = "sample/n02123045/chelsea.png"


@pytest.fixture
def store(sample_run):
    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
        yield st


def test_import_joins_source_tables_and_is_idempotent(sample_run):
    with ReviewStore(sample_run.home) as st:
        first = st.import_run(sample_run.run)
        rows = st.candidates()
        again = st.import_run(sample_run.run)
        assert st.candidates() == rows
        st.decide(CHELSEA, "keep")
        st.import_run(sample_run.run)  # re-importing never touches decisions
        assert st.candidates(id=CHELSEA)[0]["verdict"] == "keep"
    assert first.candidates == again.candidates == 9
    assert first.by_source == {"objectnet": 2, "sample": 7}
    assert sorted(r["id"] for r in rows) == sample_run.ids
    chelsea = next(r for r in rows if r["id"] == CHELSEA)
    assert chelsea["english_label"] == ["tabby cat", "tiger cat"]  # from the source table
    assert chelsea["path"] == "sources/sample/n02123045/chelsea.png"
    assert (sample_run.home / chelsea["path"]).is_file()
    assert chelsea["top5"] == [285, 287, 281, 282, 283]
    assert chelsea["top5_names"][2:4] == ["tabby cat", "tiger cat"]
    assert chelsea["verdict"] == "pending"
    mug = next(r for r in rows if r["origin"] == "objectnet")
    assert mug["label_space"] == "objectnet_113" and mug["english_label"] == ["coffee mug"]
    con = duckdb.connect(str(sample_run.home / "review.duckdb"), read_only=True)
    try:
        judge = con.execute("SELECT judge FROM runs").fetchall()
        spaces = con.execute(
            "SELECT label_spaces FROM sources WHERE source = 'objectnet'").fetchall()
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'candidates'").fetchall())
    finally:
        con.close()
    assert judge == [("efficientnet-lite0",)]
    assert json.loads(spaces[0][0])["objectnet_113"] == [409, 504, 759, 872, 892, 968]
    assert "BLOB" not in types.values()  # paths only, never image bytes


def test_import_errors_name_what_is_missing(sample_run):
    with ReviewStore(sample_run.home) as st:
        with pytest.raises(MissingFileError, match="runs under .*: sample-run"):
            st.import_run("no-such-run")
        (sample_run.home / "sources" / "objectnet.parquet").unlink()
        with pytest.raises(MissingFileError, match="imhard build --source objectnet"):
            st.import_run(sample_run.run)
        assert st.candidates() == []  # all or nothing


def test_import_refuses_candidates_missing_from_their_source(sample_run):
    table = pq.read_table(sample_run.candidates)
    rows = table.to_pylist()
    rows[0] = {**rows[0], "id": "objectnet/objectnet-1.0/images/mug/gone.png"}
    write_table(rows, table.schema, sample_run.candidates)
    with ReviewStore(sample_run.home) as st:
        with pytest.raises(InvalidValueError, match="gone.png"):
            st.import_run(sample_run.run)
        assert st.candidates() == []


def test_history_is_append_only_and_undo_steps_back(store):
    store.decide(CHELSEA, "keep", tags=["rare case"], reviewer="ann")
    store.decide(CHELSEA, "remove", reason="Ill posed", note="two cats?", reviewer="ann")
    before = store.history()
    assert store.candidates(id=CHELSEA)[0]["verdict"] == "remove"

    res = store.undo(reviewer="ann")
    assert res["undone"]["verdict"] == "remove"
    assert res["candidate"]["verdict"] == "keep"            # the previous decision again
    assert res["candidate"]["tags"] == ["rare-case"]
    assert store.undo(reviewer="ann")["candidate"]["verdict"] == "pending"
    assert store.undo(reviewer="ann") is None               # nothing left to undo

    after = store.history()
    assert after[:2] == before                               # never rewritten
    assert [e["verdict"] for e in after] == ["keep", "remove", "undo", "undo"]
    assert [e["undoes"] for e in after[2:]] == [2, 1]
    assert current_table_ids(store) == []


def current_table_ids(store):
    return store.current_decisions().column("id").to_pylist()


def test_undo_targets_one_reviewer_or_one_image(store, sample_run):
    mug, tripod = sample_run.objectnet_ids
    store.decide(mug, "keep", reviewer="ann")
    store.decide(tripod, "remove", reason="duplicate", reviewer="bob")
    assert store.undo(reviewer="ann")["candidate"]["id"] == mug     # bob's later one is kept
    assert store.candidates(id=tripod)[0]["verdict"] == "remove"
    store.decide(mug, "keep", reviewer="ann")
    assert store.undo(id=tripod)["candidate"]["verdict"] == "pending"
    assert current_table_ids(store) == [mug]


def test_decisions_validate_and_name_the_choices(store):
    with pytest.raises(InvalidValueError, match="keep, remove"):
        store.decide(CHELSEA, "maybe")
    with pytest.raises(InvalidValueError, match="ill-posed, wrong-label, duplicate, other"):
        store.decide(CHELSEA, "remove", reason="ugly")
    with pytest.raises(InvalidValueError,
                       match="lack-of-information, rare-case, illusion, many-objects"):
        store.decide(CHELSEA, "keep", tags="blurry")
    with pytest.raises(InvalidValueError, match="reason explains a removal"):
        store.decide(CHELSEA, "keep", reason="duplicate")
    with pytest.raises(UnknownNameError, match="imhard review list"):
        store.decide([CHELSEA, "sample/nope.png"], "keep")
    assert store.history() == []  # a batch with one unknown id records nothing
    events = store.decide(CHELSEA, "remove", reason="wrong_label", tags="illusion, Many objects")
    assert (events[0]["reason"], events[0]["tags"]) == ("wrong-label", ["illusion", "many-objects"])


def test_status_counts_by_verdict_origin_reason(store, sample_run):
    mug, tripod = sample_run.objectnet_ids
    store.decide([mug, CHELSEA], "remove", reason="ill-posed")
    store.decide(tripod, "keep", tags=["lack-of-information"])
    st = store.status()
    assert (st["total"], st["pending"], st["keep"], st["remove"], st["decided"]) == (9, 6, 1, 2, 3)
    assert st["by_origin"]["objectnet"] == {"total": 2, "pending": 0, "keep": 1, "remove": 1}
    assert st["by_origin"]["sample"]["pending"] == 6
    assert st["by_reason"] == {"ill-posed": 2}
    assert st["by_tag"] == {"lack-of-information": 1}
    assert store.status(origin="objectnet")["total"] == 2
    assert [c["id"] for c in store.candidates(verdict="keep")] == [tripod]
    assert len(store.candidates(verdict="pending", origin="sample", limit=4)) == 4


def test_current_decisions_is_empty_with_the_schema_before_any_review(isolated_home):
    table = current_decisions()
    assert table.num_rows == 0
    assert table.schema.equals(DECISION_SCHEMA)
    assert not (isolated_home / "review.duckdb").exists()


def test_current_decisions_latest_event_per_id(store, sample_run):
    store.decide(CHELSEA, "keep")
    store.decide(CHELSEA, "remove", reason="other", note="n", reviewer="ann")
    store.decide(sample_run.objectnet_ids[0], "keep")
    store.close()
    table = current_decisions(sample_run.home)
    assert table.schema.equals(DECISION_SCHEMA)
    rows = {r["id"]: r for r in table.to_pylist()}
    assert set(rows) == {CHELSEA, sample_run.objectnet_ids[0]}
    assert (rows[CHELSEA]["verdict"], rows[CHELSEA]["reason"]) == ("remove", "other")
    assert rows[CHELSEA]["at"].tzinfo is not None


def test_export_apply_round_trip_is_idempotent(store, sample_run, sample_home, tmp_path):
    mug, tripod = sample_run.objectnet_ids
    store.decide(CHELSEA, "remove", reason="ill-posed", tags=["illusion"], note="a note")
    store.decide(mug, "keep", reviewer="ann")
    store.decide(tripod, "keep")
    store.undo(id=tripod)
    out, n = store.export(tmp_path / "decisions.parquet")
    assert n == 2
    assert pq.read_schema(out).remove_metadata().equals(DECISION_SCHEMA)
    assert store.apply(out).added == 0  # its own export is already in its log

    other = make_sample_run(tmp_path / "other", sample_home)
    with ReviewStore(other.home) as dest:
        dest.import_run(other.run)
        first = dest.apply(out)
        second = dest.apply(out)
        assert (first.added, first.skipped) == (2, 0)
        assert (second.added, second.skipped) == (0, 2)
        assert len(dest.history()) == 2
        assert dest.current_decisions().equals(store.current_decisions())


def test_apply_keeps_a_newer_local_decision(store, sample_run, sample_home, tmp_path):
    store.decide(CHELSEA, "keep")
    out, _ = store.export(tmp_path / "old.parquet")
    other = make_sample_run(tmp_path / "other", sample_home)
    with ReviewStore(other.home) as dest:
        dest.import_run(other.run)
        dest.decide(CHELSEA, "remove", reason="duplicate")  # made after the export's decision
        assert dest.apply(out).added == 1
        assert dest.candidates(id=CHELSEA)[0]["verdict"] == "remove"
        assert len(dest.history(CHELSEA)) == 2


def test_history_export_carries_every_uncancelled_decision(store, sample_run, tmp_path):
    fields = DECISION_SCHEMA.names
    second = next(i for i in sample_run.ids if i != CHELSEA)
    kept = store.decide(CHELSEA, "keep", tags=["rare-case"], note="first look", reviewer="ann")
    other = store.decide(CHELSEA, "remove", reason="other")
    store.decide(CHELSEA, "remove", reason="duplicate")
    store.undo()  # cancels the duplicate
    later = store.decide(second, "remove", reason="duplicate", reviewer="bob")
    path, n = store.export(tmp_path / "h.parquet", history=True)
    assert n == 3
    exported = pq.read_table(path)
    assert exported.schema.metadata[b"imagenet_hard.review_export"] == b"history"
    want = [{**{k: e[k] for k in fields}, "at": datetime.fromisoformat(e["at"])}
            for e in (*kept, *other, *later)]  # in the order made
    assert exported.select(fields).to_pylist() == want
    current, _ = store.export(tmp_path / "c.parquet")  # the latest per id only
    assert pq.read_table(current).select(fields).to_pylist() == want[1:]


def test_apply_rejects_bad_rows_with_the_row_number(store, tmp_path):
    rows = [{"id": CHELSEA, "verdict": "keep", "reason": None, "tags": [], "note": None,
             "reviewer": None, "at": None}]
    write_table(rows, DECISION_SCHEMA, tmp_path / "bad.parquet")
    with pytest.raises(InvalidValueError, match="row 0: every row needs an id and a time"):
        store.apply(tmp_path / "bad.parquet")


def test_newer_schema_version_is_refused(sample_run):
    ReviewStore(sample_run.home).close()
    con = duckdb.connect(str(sample_run.home / "review.duckdb"))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(ImHardError, match="schema version 99.*Upgrade"):
        ReviewStore(sample_run.home)


@pytest.mark.slow
def test_imports_a_real_mining_run(isolated_home, sample_home):
    """The mining stage's own output (a judge that always answers 'tench') imports as is."""
    import shutil

    import torch

    from imagenet_hard.judges.scripted import ScriptedJudge
    from imagenet_hard.mining import mine

    shutil.copytree(sample_home / "sources", isolated_home / "sources")
    judge = ScriptedJudge(lambda crops: torch.zeros(len(crops), dtype=torch.long), name="tench")
    result = mine("sample", judge, run="tench-run", batch_size=324)
    with ReviewStore() as store:
        res = store.import_run("tench-run")
        rows = store.candidates()
        status = store.status()
    assert res.candidates == result.summary.candidates == 9
    assert status["runs"][0]["judge"] == "tench"
    assert {r["top5_names"][0] for r in rows} == {"tench"}
    assert all((isolated_home / r["path"]).is_file() for r in rows)
