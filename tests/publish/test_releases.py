"""Releases: versions, the ledger and its changes, the semver rule, the card's changelog,
loading a chosen version, `imhard diff`, and `publish --check` on a tampered ledger (issue 24)."""

from __future__ import annotations

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError
from imagenet_hard.publish import check, publish
from imagenet_hard.publish.releases import read_ledger
from imagenet_hard.review import ReviewStore, current_decisions, current_relabels


def _publish(sample_run, out, version):
    return publish(sample_run.run, current_decisions(sample_run.home, with_seq=True), out,
                   home=sample_run.home, version=version, relabels=current_relabels(sample_run.home),
                   date="2026-12-06")


@pytest.fixture
def two_versions(sample_run, tmp_path):
    """v1.0.0 keeps every candidate; review then removes 3 and relabels 2; v2.0.0."""
    out = tmp_path / "imagenet-hard"
    ids = sample_run.ids
    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
        st.decide(ids, "keep", reviewer="a")
    v1 = _publish(sample_run, out, "1.0.0")
    removed, relabelled = ids[:3], ids[3:5]
    with ReviewStore(sample_run.home) as st:
        st.decide(removed, "remove", reason="ill-posed", reviewer="b")
        st.relabel(relabelled[0], [339], "a sorrel, not what the source said", reviewer="b")
        st.relabel(relabelled[1], [281, 282], "both cat names fit", reviewer="b")
    with pytest.raises(InvalidValueError, match="needs a major one.*publish it as 2.0.0"):
        _publish(sample_run, out, "1.1.0")
    v2 = _publish(sample_run, out, "2.0.0")
    return out, v1, v2, removed, relabelled


def test_two_versions_ledger_changes_and_loading(two_versions):
    out, v1, v2, removed, relabelled = two_versions
    ledger = read_ledger(out)
    assert [r.version for r in ledger.releases] == ["1.0.0", "2.0.0"]
    assert ledger.releases[1].parent == "1.0.0" and ledger.releases[1].rows == v1.rows - 3
    assert ledger.releases[0].changes == v1.rows   # the first version adds every row
    changes = ledger.changes_of("2.0.0")
    assert sorted((c.kind, c.id) for c in changes) == sorted(
        [("removed", i) for i in removed] + [("relabelled", i) for i in relabelled])
    assert all(c.reason for c in changes) and all(c.cause.startswith("review event #")
                                                  for c in changes)
    assert v2.changes == changes
    text = (out / "README.md").read_text()
    assert "version **2.0.0**" in text and "removed 3 (" in text and "relabelled 2 (" in text
    assert check(out).ok, check(out).problems
    one = datasets.load_dataset(str(out), "v1.0.0", split="validation")
    two = datasets.load_dataset(str(out), "v2.0.0", split="validation")
    latest = datasets.load_dataset(str(out), split="validation")
    assert sorted(one["id"]) == sorted(v1.selection and [r.id for r in v1.selection.rows])
    assert sorted(two["id"]) == sorted(latest["id"]) == sorted(r.id for r in v2.selection.rows)
    row = two[two["id"].index(relabelled[0])]
    assert row["label"] == [339] and row["english_label"] == ["common sorrel horse"]
