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
    assert "version **2.0.0**" in text
    from imagenet_hard.publish.diff import diff
    from imagenet_hard.publish.releases import counts_text, load_version

    diffed = diff(str(out / "versions" / "v1.0.0"), str(out)).changes
    assert {(c.id, c.kind) for c in diffed} == {(c.id, c.kind) for c in changes}
    row = next(ln for ln in text.splitlines() if ln.startswith("| 2.0.0 |"))
    assert row.split(" | ")[-1] == f"{counts_text(diffed)} |"        # the card's changelog
    assert [len(load_version(out, v)) for v in ("1.0.0", "v2.0.0", None)] == [9, 6, 6]
    assert check(out).ok, check(out).problems
    one = datasets.load_dataset(str(out), "v1.0.0", split="validation")
    two = datasets.load_dataset(str(out), "v2.0.0", split="validation")
    latest = datasets.load_dataset(str(out), split="validation")
    assert sorted(one["id"]) == sorted(v1.selection and [r.id for r in v1.selection.rows])
    assert sorted(two["id"]) == sorted(latest["id"]) == sorted(r.id for r in v2.selection.rows)
    row = two[two["id"].index(relabelled[0])]
    assert row["label"] == [339] and row["english_label"] == ["common sorrel horse"]


def _rewrite(path, edit):
    """Rewrite a parquet file with ``edit`` applied to its rows (as a stranger could)."""
    table = pq.read_table(path)
    rows = table.to_pylist()
    edit(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


@pytest.mark.parametrize("tamper, says", [
    (lambda out: _rewrite(out / "changes.parquet",
                          lambda rows: rows[-1].update(reason="a nicer reason")),
     "the ledger was edited after publishing"),
    (lambda out: _rewrite(out / "changes.parquet", lambda rows: rows.pop()),
     "the ledger was edited after publishing"),
    (lambda out: _rewrite(out / "releases.parquet",
                          lambda rows: rows[0].update(date="2020-01-01")),
     "the ledger was edited after publishing"),
    (lambda out: (out / "releases.parquet").unlink(), "the ledger was deleted"),
    (lambda out: _rewrite(next((out / "versions" / "v1.0.0" / "data").glob("*.parquet")),
                          lambda rows: rows.pop()),
     "version 1.0.0: the ledger says fingerprint"),
])
def test_check_catches_a_tampered_ledger(two_versions, tamper, says):
    out = two_versions[0]
    tamper(out)
    res = CliRunner().invoke(main, ["publish", "--check", str(out)])
    assert res.exit_code == 1, res.output
    assert says in res.output and "Traceback" not in res.output


def test_a_rebuilt_ledger_still_fails_against_the_card_and_the_data(two_versions):
    """Recomputing the digests after an edit moves the head, which the sealed card states."""
    from imagenet_hard.publish import releases

    out = two_versions[0]
    ledger = read_ledger(out)
    forged = releases.Ledger()
    for r in ledger.releases:
        changes = [c for c in ledger.changes_of(r.version) if c.kind != "relabelled"]
        r = releases.Release(**{**r.__dict__, "changes": len(changes), "ledger_sha256": ""})
        forged = releases.sealed(forged, r, changes)
    releases.write_ledger(out, forged)
    problems = check(out).problems
    assert any("does not state the ledger digest" in p for p in problems)
    assert any("version 2.0.0: changes.parquet lists 3 changes, the data of it and its parent "
               "give 5" in p for p in problems)


def test_the_rule_refuses_what_would_change_silently(sample_run, tmp_path):
    out = tmp_path / "imagenet-hard"
    ids = sample_run.ids
    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
        st.decide(ids[:6], "keep", reviewer="a")
    v1 = _publish(sample_run, out, "1.0.0")
    again = _publish(sample_run, out, "1.0.0")               # the same: nothing written
    assert again.unchanged and again.fingerprint == v1.fingerprint
    with pytest.raises(InvalidValueError, match="nothing changed since 1.0.0"):
        _publish(sample_run, out, "1.0.1")
    with pytest.raises(InvalidValueError, match="--version"):
        publish(sample_run.run, current_decisions(sample_run.home), out, home=sample_run.home)
    with ReviewStore(sample_run.home) as st:
        st.decide(ids[6:], "keep", reviewer="a")              # three more rows
    with pytest.raises(InvalidValueError, match="already published"):
        _publish(sample_run, out, "1.0.0")
    with pytest.raises(InvalidValueError, match="does not follow 1.0.0"):
        _publish(sample_run, out, "1.2.0")
    with pytest.raises(InvalidValueError, match="needs a minor one"):
        _publish(sample_run, out, "1.0.1")
    minor = _publish(sample_run, out, "1.1.0")
    assert {c.kind for c in minor.changes} == {"added"} and len(minor.changes) == 3
    assert all(c.cause == f"mining run {sample_run.run}" for c in minor.changes)
    template = tmp_path / "card.md"
    from imagenet_hard.publish.card import template_text

    template.write_text(template_text().replace("# ImageNet-Hard\n", "# ImageNet-Hard (ours)\n"))
    patch = publish(sample_run.run, current_decisions(sample_run.home, with_seq=True), out,
                    home=sample_run.home, version="1.1.1", template=template, date="2026-12-07")
    assert patch.changes == [] and "# ImageNet-Hard (ours)" in (out / "README.md").read_text()
    assert [r.version for r in read_ledger(out).releases] == ["1.0.0", "1.1.0", "1.1.1"]
    assert check(out).ok, check(out).problems
    for version, rows in (("1.0.0", 6), ("1.1.0", 9)):   # each kept version is a folder of its own
        kept = out / "versions" / f"v{version}"
        assert len(datasets.load_dataset(str(kept), split="validation")) == rows
        assert check(kept).ok, check(kept).problems


def test_diff_lists_the_five_changes_with_reasons(two_versions, sample_run):
    import json

    out, v1, v2, removed, relabelled = two_versions
    res = CliRunner().invoke(main, ["diff", "1.0.0", "2.0.0", "--dataset", str(out)])
    assert res.exit_code == 0, res.output
    assert "5 changes: removed 3 (" in res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith(("removed", "relabelled"))]
    assert len(lines) == 5 and all("review event #" in ln for ln in lines)
    assert sum("ill-posed (b)" in ln for ln in lines) == 3
    clock = next(ln for ln in lines if relabelled[0] in ln)
    assert "→ common sorrel horse [339] — review event #" in clock
    assert clock.endswith(": a sorrel, not what the source said (b)")
    as_json = CliRunner().invoke(main, ["diff", "1.0.0", str(out), "--dataset", str(out),
                                        "--json", "--limit", "2"])
    data = json.loads(as_json.output)
    assert data["total"] == 5 and len(data["changes"]) == 2
    assert data["a"]["version"] == "1.0.0" and data["b"]["version"] == "2.0.0"
    assert sum(sum(per.values()) for per in data["counts"].values()) == 5
    assert data["b"]["fingerprint"] == v2.fingerprint
    back = CliRunner().invoke(main, ["diff", "2.0.0", "1.0.0", "--dataset", str(out)])
    assert "added 3 (" in back.output and "relabelled 2 (" in back.output


def test_diff_of_folders_without_versions_or_ids(sample_run, tmp_path):
    """Folders published before versions existed, and rows without ids (matched by image)."""
    from imagenet_hard.publish.diff import diff

    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
        st.decide(sample_run.ids, "keep")
    old = publish(sample_run.run, current_decisions(sample_run.home), tmp_path / "old",
                  home=sample_run.home)
    with ReviewStore(sample_run.home) as st:
        st.decide(sample_run.ids[0], "remove", reason="duplicate")
        st.relabel(sample_run.ids[1], [1], "a goldfish after all")
    new = publish(sample_run.run, current_decisions(sample_run.home), tmp_path / "new",
                  home=sample_run.home, relabels=current_relabels(sample_run.home))
    res = diff(str(old.out), str(new.out))
    assert [(c.kind, c.id) for c in res.changes] == [("removed", sample_run.ids[0]),
                                                      ("relabelled", sample_run.ids[1])]
    for folder in (old.out, new.out):        # drop the id column, as the first public release had
        for shard in (folder / "data").glob("*.parquet"):
            table = pq.read_table(shard)
            pq.write_table(table.drop_columns(["id"]), shard)
    res = diff(str(old.out), str(new.out))
    assert sorted(c.kind for c in res.changes) == ["relabelled", "removed"]
    assert all(c.id.startswith("sha256:") for c in res.changes)
    relabel = next(c for c in res.changes if c.kind == "relabelled")
    assert relabel.new_label == [1] and relabel.new_english_label == ["goldfish"]


def test_diff_refuses_what_it_cannot_name(sample_run, tmp_path):
    res = CliRunner().invoke(main, ["diff", "1.0.0", "nowhere"])
    assert res.exit_code == 1 and "holds no released versions" in res.output
    (tmp_path / "x").mkdir()
    res = CliRunner().invoke(main, ["diff", str(tmp_path / "x"), "thing"])
    assert res.exit_code == 1 and "no data/ folder" in res.output



# ---- the Hub: a tag per version, load_dataset(revision=...), diff of revisions ----------------

TOKEN = "hf_TopSecretReleaseToken1234567890"


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    import datasets.config
    import huggingface_hub.constants as hc
    from hub_support import FakeHub

    with FakeHub() as hub:
        monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
        monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
        monkeypatch.setattr(hc, "ENDPOINT", hub.url)
        monkeypatch.setattr(hc, "HUGGINGFACE_CO_URL_TEMPLATE",
                            hub.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield hub


def test_hub_tags_each_version_and_loads_it_by_revision(sample_run, tmp_path, fake_hub):
    from imagenet_hard.publish import push
    from imagenet_hard.publish.diff import diff

    out = tmp_path / "imagenet-hard"
    ids = sample_run.ids
    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
        st.decide(ids, "keep", reviewer="a")
    v1 = _publish(sample_run, out, "1.0.0")
    push(out, "me/imagenet-hard")
    with ReviewStore(sample_run.home) as st:
        st.decide(ids[:3], "remove", reason="duplicate", reviewer="b")
        st.relabel(ids[3], [339], "a sorrel", reviewer="b")
    v2 = _publish(sample_run, out, "2.0.0")
    res = CliRunner().invoke(main, ["publish", "--push", "me/imagenet-hard", "--out", str(out)])
    assert res.exit_code == 0, res.output
    st = fake_hub.state
    assert set(st.tags) == {"v1.0.0", "v2.0.0"} and st.tags["v2.0.0"] == st.main
    assert st.tags["v1.0.0"] != st.main
    again = CliRunner().invoke(main, ["publish", "--push", "me/imagenet-hard", "--out", str(out)])
    assert again.exit_code == 1 and "already has the tag v2.0.0" in again.output
    assert TOKEN not in again.output
    for rev, want in (("v1.0.0", v1), ("v2.0.0", v2), (None, v2)):
        ds = datasets.load_dataset("me/imagenet-hard", revision=rev, split="validation")
        assert sorted(ds["id"]) == sorted(r.id for r in want.selection.rows), rev
    from imagenet_hard.publish.releases import load_version

    assert len(load_version("me/imagenet-hard", "1.0.0")) == len(v1.selection.rows)
    changes = diff("me/imagenet-hard@v1.0.0", "me/imagenet-hard@v2.0.0").changes
    assert sorted(c.kind for c in changes) == ["relabelled"] + ["removed"] * 3
    assert all(c.reason for c in changes)


# ---- results and the board -------------------------------------------------------------------

FIXED = '''
import numpy as np
METADATA = {"name": "Fixed guess", "uses_tta": False, "extra_training_data": False}

class Fixed:
    def predict(self, images):
        out = np.full((len(images), 1000), 1e-4, dtype=np.float32)
        for i, im in enumerate(images):
            first = 339 if im.size[0] % 2 else 281      # some rows right, some wrong
            out[i, [first, 282, 504, 409, 652]] = [0.5, 0.2, 0.1, 0.1, 0.05]
        return out / out.sum(1, keepdims=True)

def load(device):
    return Fixed()
'''


def test_a_board_entry_carried_to_2_0_0_equals_a_fresh_scoring(sample_run, tmp_path):
    from imagenet_hard.leaderboard import add_result
    from imagenet_hard.leaderboard.rescore import rescore_on
    from imagenet_hard.score import RunOptions, load_result, score

    out, board = tmp_path / "imagenet-hard", tmp_path / "board"
    sub = tmp_path / "fixed.py"
    sub.write_text(FIXED)
    ids = sample_run.ids
    with ReviewStore(sample_run.home) as st:
        st.import_run(sample_run.run)
        st.decide(ids, "keep", reviewer="a")
    _publish(sample_run, out, "1.0.0")
    opts = RunOptions(batch_size=4, workers=0)
    first = score(sub, dataset=out, out=tmp_path / "s1" / "fixed.json", options=opts,
                  home=sample_run.home)
    assert first.result.dataset["version"] == "1.0.0"
    add_result(first.path, board, dataset=out, home=sample_run.home)
    with ReviewStore(sample_run.home) as st:
        st.decide(ids[:3], "remove", reason="ill-posed", reviewer="b")
        st.relabel(ids[3], [339], "a sorrel", reviewer="b")
        st.relabel(ids[4], [281, 282], "a cat", reviewer="b")
    _publish(sample_run, out, "2.0.0")
    res = CliRunner().invoke(main, ["leaderboard", "rescore-on", "2.0.0", "--dir", str(board),
                                    "--dataset", str(out), "--write"])
    assert res.exit_code == 0, res.output
    assert "carried           Fixed guess:" in res.output and "2 relabelled rows re-judged" in res.output
    carried = load_result(next((board / "results").glob("*.v2.0.0.json")))
    fresh = score(sub, dataset=out, out=tmp_path / "s2" / "fixed.json", options=opts,
                  home=sample_run.home).result
    assert fresh.dataset["version"] == "2.0.0"
    assert carried.dataset["fingerprint"] == fresh.dataset["fingerprint"]
    assert carried.dataset["carried_from"]["version"] == "1.0.0"
    drop = lambda m: {k: v for k, v in m.items() if k != "images_per_s"}  # noqa: E731
    assert drop(carried.metrics) == drop(fresh.metrics)
    assert carried.per_origin == fresh.per_origin
    assert carried.metrics["accuracy"] != first.result.metrics["accuracy"]
    again = rescore_on("2.0.0", board, out, sample_run.home)
    assert [c.status for c in again] == ["carried"]        # its own .v2.0.0 copy is not listed
    from imagenet_hard.leaderboard import build_board

    built = build_board(board, include_reported=False)    # one section per version
    assert "### imagenet-hard v1.0.0 (9 rows" in built.table
    assert "### imagenet-hard v2.0.0 (6 rows" in built.table
    add_result(tmp_path / "s2" / "fixed.json", board, dataset=out, home=sample_run.home,
               replace=True)                               # now the fresh 2.0.0 result
    listed = CliRunner().invoke(main, ["leaderboard", "rescore-on", "2.0.0", "--dir", str(board),
                                       "--dataset", str(out)])
    assert listed.output.splitlines() == ["scored on 2.0.0  Fixed guess"], listed.output


# ---- the rule and hostile folders, without publishing ------------------------------------------

def test_version_numbers_and_the_levels_changes_need():
    from imagenet_hard.publish.releases import (
        Change,
        RowKey,
        bump_level,
        diff_rows,
        parse_version,
        required_bump,
    )

    assert parse_version("v1.2.3") == (1, 2, 3)
    for bad in ("1.2", "1.2.3.4", "01.0.0", "1.0.0-rc1", "../1.0.0"):
        with pytest.raises(InvalidValueError, match="MAJOR.MINOR.PATCH"):
            parse_version(bad)
    assert [bump_level("1.4.2", v) for v in ("2.0.0", "1.5.0", "1.4.3")] == ["major", "minor",
                                                                              "patch"]
    with pytest.raises(InvalidValueError, match="does not follow 1.4.2"):
        bump_level("1.4.2", "1.4.2")
    old = {"a": RowKey("a", "o", (1,), ("x",), "s1"), "b": RowKey("b", "o", (2,), ("y",), "s2")}
    new = {"a": RowKey("a", "o", (1,), ("x",), "s9"), "c": RowKey("c", "o", (3,), ("z",), "s3")}
    kinds = [(c.kind, c.id) for c in diff_rows(old, new)]
    assert kinds == [("added", "c"), ("removed", "b"), ("image replaced", "a")]
    assert required_bump([Change("", "c", "o", "added")], card_changed=True) == "minor"
    assert required_bump([Change("", "a", "o", "image replaced")], card_changed=False) == "major"
    assert required_bump([], card_changed=True) == "patch"
    assert required_bump([], card_changed=False) is None


def test_linked_shards_version_folders_and_ledgers_are_refused(two_versions, tmp_path):
    """A folder from a stranger: links out of it are never followed."""
    from imagenet_hard.publish.diff import diff

    out = two_versions[0]
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    shard = next((out / "data").glob("*.parquet"))
    (secret / shard.name).write_bytes(shard.read_bytes())
    linked = tmp_path / "linked"
    (linked / "data").mkdir(parents=True)
    (linked / "data" / shard.name).symlink_to(secret / shard.name)
    with pytest.raises(InvalidValueError, match="links"):
        diff(str(out), str(linked))
    v1 = out / "versions" / "v1.0.0"
    v1.rename(secret / "v1.0.0")
    v1.symlink_to(secret / "v1.0.0")
    problems = check(out).problems
    assert any("version 1.0.0" in p and "is a link" in p for p in problems), problems
    ledger = out / "releases.parquet"
    ledger.rename(secret / "releases.parquet")
    ledger.symlink_to(secret / "releases.parquet")
    res = CliRunner().invoke(main, ["diff", "1.0.0", "2.0.0", "--dataset", str(out)])
    assert res.exit_code == 1 and "is a link or not a file" in res.output
