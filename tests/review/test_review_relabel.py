"""Relabelling in review: an event like a decision, undoable, validated, and a migrated schema."""

from __future__ import annotations

import duckdb
import pytest
from click.testing import CliRunner

from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError, UnknownNameError
from imagenet_hard.labels import parse_labels
from imagenet_hard.review import ReviewStore, current_relabels
from imagenet_hard.review.schema import SCHEMA_VERSION

CHELSEA = "sample/n02123045/chelsea.png"


@pytest.fixture
def store(sample_run):
    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
        yield st


def test_relabel_is_an_event_and_undo_cancels_it(store):
    store.decide(CHELSEA, "keep", reviewer="a")
    ev = store.relabel(CHELSEA, [282, 281, 281], "a tiger cat by its stripes", reviewer="b")
    assert ev["verdict"] == "relabel" and list(ev["label"]) == [281, 282]
    assert store.current_relabels()[CHELSEA]["reason"] == "a tiger cat by its stripes"
    later = store.relabel(CHELSEA, [282], "stripes only", reviewer="b")
    assert list(store.current_relabels()[CHELSEA]["label"]) == [282]
    assert later["seq"] > ev["seq"]
    undone = store.undo(CHELSEA)                 # the latest event of that image: the relabel
    assert undone["undone"]["seq"] == later["seq"]
    assert list(store.current_relabels()[CHELSEA]["label"]) == [281, 282]
    store.undo(CHELSEA)
    assert store.current_relabels() == {}
    assert store.candidates(id=CHELSEA)[0]["verdict"] == "keep"   # the decision is untouched
    kinds = [e["verdict"] for e in store.history(CHELSEA)]
    assert kinds == ["keep", "relabel", "relabel", "undo", "undo"]


def test_relabel_validates_its_input(store):
    with pytest.raises(InvalidValueError, match="0..999"):
        store.relabel(CHELSEA, [1000], "out of range")
    with pytest.raises(InvalidValueError, match="may not be empty"):
        store.relabel(CHELSEA, [], "nothing")
    with pytest.raises(InvalidValueError, match="--reason"):
        store.relabel(CHELSEA, [281], "  ")
    with pytest.raises(UnknownNameError):
        store.relabel("sample/nope.png", [281], "unknown id")
    assert store.current_relabels() == {}


def test_parse_labels_takes_indices_and_names():
    assert parse_labels(["tiger cat", "281"]) == [281, 282]
    assert parse_labels(["282,281"]) == [281, 282]
    with pytest.raises(UnknownNameError, match="tiger cta"):
        parse_labels(["tiger cta"])


def test_cli_relabel_history_and_undo(sample_run):
    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
    run = CliRunner()
    res = run.invoke(main, ["review", "relabel", CHELSEA, "--label", "tiger cat", "--reason",
                            "stripes", "--reviewer", "t"])
    assert res.exit_code == 0, res.output
    assert "→ [282] (tiger cat)" in res.output
    assert current_relabels(sample_run.home)[CHELSEA]["reviewer"] == "t"
    listed = run.invoke(main, ["review", "list"])
    assert "label: tabby cat, tiger cat → relabelled tiger cat;" in listed.output
    hist = run.invoke(main, ["review", "history", CHELSEA])
    assert "relabel → 282" in hist.output
    undo = run.invoke(main, ["review", "undo"])
    assert undo.exit_code == 0 and "undid relabel" in undo.output
    assert current_relabels(sample_run.home) == {}
    missing = run.invoke(main, ["review", "relabel", CHELSEA, "--label", "282"])
    assert missing.exit_code == 2 and "--reason" in missing.output


def test_a_version_1_store_is_migrated(sample_run):
    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
        st.decide(CHELSEA, "keep")
    con = duckdb.connect(str(sample_run.home / "review.duckdb"))
    con.execute("DROP TABLE relabels")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    assert current_relabels(sample_run.home) == {}          # read-only: no table, no relabels
    with ReviewStore(sample_run.home) as st:               # read-write: migrated
        st.relabel(CHELSEA, [282], "stripes")
        assert st.candidates(id=CHELSEA)[0]["verdict"] == "keep"
    con = duckdb.connect(str(sample_run.home / "review.duckdb"), read_only=True)
    assert con.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
    con.close()


def test_the_server_relabels_while_it_owns_the_database(sample_run):
    import http.client
    import json
    from urllib.parse import urlsplit

    from imagenet_hard.review import start_server

    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
    server = start_server(home=sample_run.home, port=0)
    parts = urlsplit(server.url)

    def post(path, body):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        conn.request("POST", path, body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        out = resp.status, json.loads(resp.read())
        conn.close()
        return out

    try:
        status, body = post("/api/relabel", {"id": CHELSEA, "label": ["tiger cat", 281],
                                             "reason": "stripes", "reviewer": "web"})
        assert status == 200 and body["event"]["label"] == [281, 282], body
        for bad, code in (({"id": CHELSEA, "label": 282, "reason": "x"}, 400),
                          ({"id": CHELSEA, "label": [True], "reason": "x"}, 400),
                          ({"id": CHELSEA, "label": [10**12], "reason": "x"}, 400),
                          ({"id": CHELSEA, "label": [282]}, 400),
                          ({"id": CHELSEA, "label": [282], "reason": "x", "extra": 1}, 400),
                          ({"id": "sample/none.png", "label": [282], "reason": "x"}, 404)):
            status, body = post("/api/relabel", bad)
            assert status == code and "error" in body, (bad, status, body)
        status, body = post("/api/undo", {"id": CHELSEA})
        assert status == 200 and body["undone"]["verdict"] == "relabel"
    finally:
        server.stop()
    assert current_relabels(sample_run.home) == {}
