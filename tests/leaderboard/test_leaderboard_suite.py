"""The board with suite results: ranks never mix fingerprints, the suite view (a column per set and
fingerprint, ImageNet-C means and mCE), suite results checked by add and build, the authors'
reported tables transcribed, the TTA flag."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
import suite_data as sd
from scoring_data import PREDICT_FORM, make_dataset
from scoring_data import write_submission as write_single

from imagenet_hard.errors import InvalidValueError
from imagenet_hard.files import sha256_file
from imagenet_hard.leaderboard import add_result, add_suite, build_board
from imagenet_hard.leaderboard import entries as entries_mod
from imagenet_hard.leaderboard import suites as suites_mod
from imagenet_hard.leaderboard.entries import Entry, tta_mode
from imagenet_hard.leaderboard.render import markdown
from imagenet_hard.leaderboard.reported import read_table, reported_data, reported_rows
from imagenet_hard.score import RunOptions, score
from imagenet_hard.score.sets import default_dataset
from imagenet_hard.score.suite import score_suite

OPTS = RunOptions(batch_size=4, workers=0)


def _sections(md: str) -> dict[str, str]:
    return {part.split("\n", 1)[0]: part for part in md.split("### ")[1:]}


def _ranks(section: str) -> list[int]:
    return [int(m) for m in re.findall(r"^\| (\d+) \|", section, re.M)]


@pytest.fixture
def board_with_suite(tmp_path, isolated_home):
    """A board holding a single result on the local release and a suite (IN-A, ObjectNet and
    that release), with a second single result on other data."""
    make_dataset(default_dataset())
    single = score(write_single(tmp_path, PREDICT_FORM, "oracle.py"), out=tmp_path / "s.json",
                   options=OPTS)
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    sd.build_objectnet(isolated_home, tmp_path / "src")
    suite = score_suite(sd.write_submission(tmp_path / "subs"), out=tmp_path / "r.suite.json",
                        options=OPTS)
    other = make_dataset(tmp_path / "other", rows=[("x0", "imagenet", [5], [5, 1, 2, 3, 4], 80)])
    other_run = score(write_single(tmp_path, PREDICT_FORM.replace("Controlled", "Other"),
                                   "other.py"), dataset=other, out=tmp_path / "o.json",
                      options=OPTS)
    board = tmp_path / "board"
    add_result(single.path, board)
    add_result(other_run.path, board, dataset=other)
    added = add_suite(suite.path, board)
    assert added.checked_labels and added.result.name == "controlled-suite.suite.json"
    return board, single, suite, other_run


def test_rows_are_ranked_only_against_rows_on_the_same_data(board_with_suite):
    board, single, suite, other = board_with_suite
    built = build_board(board)
    md = (board / "README.md").read_text()
    secs = _sections(md)
    fp = single.result.dataset["fingerprint"]
    release = next(v for k, v in secs.items() if fp[:8] in k)
    # The single result and the suite's ImageNet-Hard set share the local release: one table.
    assert "| 1 | Controlled | verified | 50.00 |" in release
    assert "| 2 | Controlled suite | verified |" in release
    for name, set_fp in [(e["name"], e["dataset"]["fingerprint"]) for e in suite.result.sets]:
        if name == "imagenet-hard":
            continue
        sec = next(v for k, v in secs.items() if set_fp[:8] in k)
        assert sec.split("\n", 1)[0].startswith(name) and _ranks(sec) == [1]
    one_row = next(v for k, v in secs.items() if other.result.dataset["fingerprint"][:8] in k)
    assert "| 1 | Other | verified | 100.00 |" in one_row and _ranks(one_row) == [1]
    # Every section's verified rows share one fingerprint; reported rows keep their own tables.
    by_section = {}
    for e in built.entries:
        by_section.setdefault(e.section, set()).add(
            re.search(r"fp ([0-9a-f]{8})", e.dataset)[1] if e.status == "verified" else e.dataset)
    assert all(len(v) == 1 for v in by_section.values())
    assert _ranks(secs["ImageNet-Hard release (10,980 rows)"]) == list(range(1, 78))
    assert _ranks(secs["paper Table 6 (13,630 rows)"]) == list(range(1, 9))
    page = (board / "index.html").read_text()
    assert page.count('<table class="sortable board"') == len(secs) - 1  # minus the suite view
    assert 'id="suite"' in page


def test_a_reported_dataset_with_a_known_fingerprint_ranks_with_it(board_with_suite, monkeypatch):
    board, single, _, _ = board_with_suite
    fp = single.result.dataset["fingerprint"]
    monkeypatch.setattr(entries_mod, "pinned_fingerprints",
                        lambda: {"ImageNet-Hard release (10,980 rows)": fp})
    md = markdown(build_board(board).entries)
    joined = next(v for k, v in _sections(md).items() if k.startswith("ImageNet-Hard release"))
    assert f"fp {fp[:8]}" in joined.split("\n", 1)[0]
    assert "| 1 | Controlled | verified | 50.00 |" in joined
    assert "| 3 | EfficientNet-L2-NS@800 | reported | 39.00 |" in joined


def test_suite_view_columns_and_imagenet_c(tmp_path, isolated_home, monkeypatch):
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    sd.write_imagenet_c(isolated_home)
    board = tmp_path / "board"
    runs = {}
    for body, name in [(sd.CONTROLLED, "controlled.py"), (sd.ALWAYS_WRONG, "alexnet.py")]:
        sub = sd.write_submission(tmp_path / "subs", body, name)
        runs[name] = score_suite(sub, out=tmp_path / f"{name}.suite.json", options=OPTS)
        add_suite(runs[name].path, board)
    built = build_board(board)
    md = (board / "README.md").read_text()
    suite = _sections(md)["Suite (one column per set and fingerprint)"]
    assert "| Model | TTA | Extra data | imagenet-a % | IN-C err % (15) | " in suite
    # Controlled: IN-A 2/3 (Wilson interval shown); fog errors 0.5 and 1 → 75, saturate 0.
    assert "| Controlled suite | no | no | 66.67 (20.77–93.85) | 75.00 | 0.00 | — |" in suite
    # Class 999 lies outside ImageNet-A's 200, which hold no mass: uniform there, so the lowest
    # index (6, the label of 2 of the 3 rows) is its answer within the 200.
    assert "| Always 999 | — | — | 66.67 (20.77–93.85) | 100.00 | 100.00 | — |" in suite
    assert not [e for e in built.entries if e.protocol == "imagenet-c"]
    # With the reference AlexNet's file being the always-wrong one, mCE appears: CE_fog = 1.5 / 2.
    ref = sha256_file(tmp_path / "subs" / "alexnet.py")
    monkeypatch.setattr(suites_mod, "reference_alexnet_sha", lambda: ref)
    suite = _sections(markdown(*_board(board)))["Suite (one column per set and fingerprint)"]
    assert "| Controlled suite | no | no | 66.67 (20.77–93.85) | 75.00 | 0.00 | 75.00 |" in suite
    assert "| 100.00 | 100.00 | 100.00 |" in suite
    # A second build of ImageNet-A is a second column: sorting never compares the two.
    folder = tmp_path / "src" / "in-a" / "imagenet-a" / sd.in_a_wnid(1)[0]
    (folder / "extra.png").write_bytes(sd.coded_photo(9, [sd.A1, 0, 1, 2, 3], 50))
    from imagenet_hard.sources import build

    build("imagenet-a", path=tmp_path / "src" / "in-a", force=True)
    again = score_suite(tmp_path / "subs" / "controlled.py", sets=["imagenet-a"],
                        out=tmp_path / "again.suite.json", options=OPTS)
    add_suite(again.path, board, replace=True)
    cols = suite_mod_columns(board)
    assert [c.split(" · fp ")[0] for c in cols] == ["imagenet-a", "imagenet-a"] and len(set(cols)) == 2
    page = (board / "index.html").read_text()
    assert page.count("imagenet-a · fp ") == 2 and 'data-first="ascending"' in page


def _board(board):
    built = suites_mod.collect_board(board)
    return built.entries, built.suites


def suite_mod_columns(board):
    build_board(board)
    return [c.label for c in suites_mod.suite_columns(_board(board)[1])]


def test_add_and_build_check_every_set_of_a_suite(tmp_path, isolated_home):
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    sd.write_imagenet_c(isolated_home)
    sub = sd.write_submission(tmp_path / "subs")
    partial = score_suite(sub, limit=1, out=tmp_path / "p.suite.json", options=OPTS)
    with pytest.raises(InvalidValueError, match="set imagenet-a scored 1 of 3 rows"):
        add_suite(partial.path, tmp_path / "board")
    run = score_suite(sub, out=tmp_path / "r.suite.json", options=OPTS)
    raw = json.loads(run.path.read_text())
    raw["sets"][0]["metrics"].update(correct=3, accuracy=1.0)
    forged = tmp_path / "forged.suite.json"
    forged.write_text(json.dumps(raw))
    with pytest.raises(InvalidValueError, match="metrics.accuracy: claimed 1.0"):
        add_suite(forged, tmp_path / "board")
    board = tmp_path / "board"
    add_suite(run.path, board)
    with pytest.raises(InvalidValueError, match="--replace"):
        add_suite(run.path, board)
    dest = board / "results" / "controlled-suite.suite.json"
    data = json.loads(dest.read_text())
    data["sets"][1]["metrics"].update(correct=0, accuracy=0.0)   # skipped add: build refuses it
    dest.write_text(json.dumps(data))
    with pytest.raises(InvalidValueError, match="imagenet-c/fog/1 does not match its predictions"):
        build_board(board)


def test_hostile_text_in_a_suite_stays_text(tmp_path, isolated_home):
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    name = '<script>window.__pwned=1</script>[x](javascript:alert(1))'
    sub = sd.write_submission(tmp_path / "subs", sd.CONTROLLED.replace(
        '"name": "Controlled suite"', f'"name": {name!r}'))
    board = tmp_path / "board"
    add_suite(score_suite(sub, out=tmp_path / "r.suite.json", options=OPTS).path, board)
    build_board(board)
    page = (board / "index.html").read_text()
    assert "<script>window" not in page and "&lt;script&gt;window.__pwned=1" in page
    md = (board / "README.md").read_text()
    assert "<script>" not in md and "\\[x\\](javascript:alert(1))" in md


def test_reported_tables_are_the_authors_numbers():
    data = reported_data()
    openclip, datacomp = data["tables"]
    assert (openclip["rows"], datacomp["rows"]) == (68, 25)
    assert openclip["repository"] == "taesiri/ZoomIsAllYouNeed"
    assert openclip["commit"].startswith("70274e4") and datacomp["commit"].startswith("ba99ee9")
    rows = {(r["model"], r["pretrained"]): r["accuracy"] for r in read_table(openclip)}
    assert rows[("ViT-L-14", "datacomp_xl_s13b_b90k")] == 15.60
    assert rows[("ViT-bigG-14", "laion2b_s39b_b160k")] == 15.93
    assert rows[("RN50", "yfcc15m")] == 0.80
    assert rows[("coca_ViT-B-32", "mscoco_finetuned_laion2b_s13b_b90k")] == 0.20
    assert rows[("convnext_xxlarge", "laion2b_s34b_b82k_augreg_soup")] == 14.68
    dc = {(r["model"], r["pretrained"]): r["accuracy"] for r in read_table(datacomp)}
    assert dc[("ViT-B-32", "commonpool_s_s13m_b4k")] == 0.43 and set(dc) <= set(rows)
    reported = reported_rows()
    names = [r.name for r in reported]
    # The card's and paper's reported rows stay; the README's ViT-L-14 and the card's bigG are each shown once.
    for name, acc in [("AlexNet", 7.34), ("EfficientNet-L2-NS@800", 39.0), ("ResNet-50", 12.56),
                      ("OpenCLIP ViT-L-14 (zero-shot)", 15.6), ("CLIP ViT-L/14@336 (zero-shot)",
                                                                2.02)]:
        assert any(r.name == name and r.accuracy == acc for r in reported)
    assert "OpenCLIP ViT-L-14 (datacomp_xl_s13b_b90k)" not in names
    assert "OpenCLIP ViT-bigG-14 (laion2b_s39b_b160k)" not in names
    assert len(reported) == 19 + 68 - 2
    vitl = next(r for r in reported if r.name == "OpenCLIP ViT-L-14 (zero-shot)")
    assert "README" in vitl.source and "openclip_results.csv @ 70274e4" in vitl.source


def test_tta_mode_is_the_board_flag():
    assert tta_mode(SimpleNamespace(tta={"mode": "zoom"})) == "zoom"
    assert tta_mode(SimpleNamespace(tta="zoom")) == "zoom"
    assert tta_mode(SimpleNamespace()) is None
    e = Entry(name="Zoomed", status="verified", dataset="d (1 rows, fp 0)", accuracy=0.5,
              uses_tta=True, tta_mode="zoom<b>", section="x")
    md = markdown([e])
    assert "| 1 | Zoomed | verified | 50.00 | — | — | — | zoom&lt;b&gt; |" in md


def test_a_suite_set_comes_from_the_cache_as_it_does_from_its_predictions(board_with_suite):
    """Every set of the suite is cached on its own; a cached build equals an uncached one, and a
    set whose predictions change (and whose recorded SHA-256 is updated) is caught as before."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    board = board_with_suite[0]
    plain = build_board(board, cache=False)
    build_board(board)
    again = build_board(board)
    sets = len(json.loads((board / "results" / "controlled-suite.suite.json").read_text())["sets"])
    assert again.cache_hits == 2 + sets
    assert again.entries == plain.entries and again.table == plain.table
    assert [(s.name, s.cells, s.errors) for s in again.suites] == \
        [(s.name, s.cells, s.errors) for s in plain.suites]
    path = board / "results" / "controlled-suite.suite.json"
    data = json.loads(path.read_text())
    entry = data["sets"][0]
    pred = board / "results" / entry["predictions"]["file"]
    table = pq.read_table(pred)
    flags = table.column("correct").to_pylist()
    flags[0] = not flags[0]
    pq.write_table(table.set_column(table.schema.get_field_index("correct"), "correct",
                                    pa.array(flags, pa.bool_())), pred)
    entry["predictions"]["sha256"] = sha256_file(pred)
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidValueError, match=r"does not match its predictions: metrics\.correct"):
        build_board(board)
