"""The label-error queue: candidates from a predictions table land in review with their
evidence, only for images under review; a relabel or a later decision answers them."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from imagenet_hard.analysis.label_errors import PREDICTIONS_TABLE_SCHEMA, queue_label_errors
from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError
from imagenet_hard.review import ReviewStore

CHELSEA = "sample/n02123045/chelsea.png"   # labelled tabby, tiger cat (281, 282)
COFFEE = "sample/n07920052/coffee.png"     # labelled espresso (967)


def predictions(path, rows):
    cols = {"id": [], "model": [], "top_k": [], "top_k_prob": []}
    for i, m, top, prob in rows:
        for k, v in zip(cols, (i, m, top, prob), strict=True):
            cols[k].append(v)
    pq.write_table(pa.table(cols, schema=PREDICTIONS_TABLE_SCHEMA), path)
    return path


@pytest.fixture
def reviewed(sample_run, tmp_path):
    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
    # two models say chelsea is an Egyptian Mau (285) confidently; coffee stays espresso; a
    # third model alone calls coffee a cup (968); an id review does not hold is skipped
    rows = [(CHELSEA, m, [285, 281], [0.9, 0.1]) for m in ("vit", "convnext")]
    rows += [(COFFEE, m, [967, 968], [0.8, 0.2]) for m in ("vit", "convnext")]
    rows += [(CHELSEA, "resnet", [281, 285], [0.7, 0.3]), (COFFEE, "resnet", [968], [0.95])]
    rows += [("elsewhere/x.png", m, [1], [0.99]) for m in ("vit", "convnext")]
    return sample_run, predictions(tmp_path / "preds.parquet", rows)


def test_import_queues_the_agreed_errors_with_evidence(reviewed):
    run, preds = reviewed
    res = queue_label_errors(run.home, predictions=preds)
    assert [c.id for c in res.search.candidates] == [CHELSEA]
    assert (res.queued, res.not_under_review) == (1, 0)   # the unknown id has no label here
    with ReviewStore(run.home) as st:
        (row,) = st.label_errors()
        assert (row["id"], row["suggested"], row["suggested_name"]) == (CHELSEA, 285, "Egyptian Mau")
        assert row["models"] == ["convnext", "vit"] and row["confidences"] == pytest.approx([0.9, 0.9])
        assert row["label"] == [281, 282] and row["models_total"] == 3 and row["answered"] is None
        st.decide(CHELSEA, "keep")
        assert st.label_errors()[0]["answered"] == "keep"
        st.relabel(CHELSEA, [285], "the models were right")
        assert st.label_errors()[0]["answered"] == "relabel"
        assert st.label_errors(pending_only=True) == []
    again = queue_label_errors(run.home, predictions=preds)   # the relabel is the label now
    assert again.search.candidates == ()
    with ReviewStore(run.home) as st:
        assert st.label_errors() == []                          # the batch was replaced


def test_cli_import_and_list(reviewed):
    run, preds = reviewed
    res = CliRunner().invoke(main, ["review", "import-label-errors", "--predictions", str(preds),
                                    "--home", str(run.home)])
    assert res.exit_code == 0, res.output
    assert "1 label-error candidates among 2 images (3 models)" in res.output
    assert "models say Egyptian Mau (285): convnext 0.90, vit 0.90" in res.output
    res = CliRunner().invoke(main, ["review", "label-errors", "--pending", "--home",
                                    str(run.home)])
    assert res.exit_code == 0 and CHELSEA in res.output
    res = CliRunner().invoke(main, ["review", "import-label-errors", "--home", str(run.home)])
    assert res.exit_code == 2 and "either --version or --predictions" in res.output
    with pytest.raises(InvalidValueError, match="either"):
        queue_label_errors(run.home, version="1.0.0", predictions=preds)


def test_a_version_2_store_gets_the_queue(sample_run):
    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
    con = duckdb.connect(str(sample_run.home / "review.duckdb"))
    con.execute("DROP TABLE label_errors")
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    with ReviewStore(sample_run.home, read_only=True) as st:
        assert st.label_errors() == []
    with ReviewStore(sample_run.home) as st:
        assert st.label_errors() == []
        assert st._sql("SELECT value FROM meta").fetchall() == [("3",)]
