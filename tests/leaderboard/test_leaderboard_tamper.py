"""Tampered results: ``leaderboard add`` recomputes every number the board shows and refuses
invented ones, checks metadata by type, and the pages show hostile text as text (README.md and
index.html, parsed and rendered in Chromium); ``leaderboard build`` re-checks results that
reached ``results/`` without ``add``."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from scoring_data import PREDICT_FORM, make_dataset, write_submission

from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError, SubmissionError
from imagenet_hard.leaderboard import add_result, build_board
from imagenet_hard.score import RunOptions, score
from imagenet_hard.score.result import predictions_path

CHROMIUM = "/usr/bin/chromium"
HOSTILE_NAME = ('<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
                '[c](javascript:alert(1))*x*')


@pytest.fixture(scope="module")
def scored_once(tmp_path_factory):
    """One honest result (controlled submission on the 8-row dataset), scored once per module."""
    root = tmp_path_factory.mktemp("scored")
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in (("IMHARD_HOME", "home"), ("HF_HOME", "hf"),
                         ("HF_DATASETS_CACHE", "hf/datasets"), ("TORCH_HOME", "torch")):
            mp.setenv(var, str(root / sub))
        data = make_dataset(root / "ds")
        sub = write_submission(root, PREDICT_FORM, "oracle.py")
        run = score(sub, dataset=data, out=root / "out" / "oracle.json",
                    options=RunOptions(batch_size=4))
    return run.path, data


@pytest.fixture
def result(tmp_path, scored_once):
    """A private copy of the result (+ predictions) and the dataset to check it against."""
    path, data = scored_once
    dest = tmp_path / "submitted" / path.name
    dest.parent.mkdir()
    shutil.copyfile(path, dest)
    shutil.copyfile(predictions_path(path), predictions_path(dest))
    return dest, data


def _tamper(path: Path, edit) -> Path:
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize("where,edit,needle", [
    ("metrics", lambda r: r["metrics"].update(accuracy_ci95=[0.1, 0.99]),
     r"metrics\.accuracy_ci95: claimed \[0\.1, 0\.99\], the predictions give \[0\.215"),
    ("per origin", lambda r: r["per_origin"][0].update(accuracy_ci95=[0.5, 0.6]),
     r"per_origin\[imagenet\]\.accuracy_ci95: claimed \[0\.5, 0\.6\]"),
    ("ece", lambda r: r["metrics"].update(ece=0.01), r"metrics\.ece: claimed 0\.01"),
    ("rows", lambda r: r["dataset"].update(rows=9, scored=9),
     r"9 rows were scored|dataset\.rows: claimed 9"),
])
def test_add_refuses_an_invented_number(tmp_path, result, where, edit, needle):
    path, data = result
    _tamper(path, edit)
    with pytest.raises(InvalidValueError, match=needle):
        add_result(path, tmp_path / "board", dataset=data)
    assert not (tmp_path / "board" / "results").exists()


@pytest.mark.parametrize("edit,needle", [
    (lambda r: r["metadata"].update(url="javascript:alert(document.domain)"),
     r"METADATA\['url'\]: url must be an http\(s\) URL, got 'javascript:"),
    (lambda r: r["metadata"].update(paper="data:text/html,<script>1</script>"),
     r"METADATA\['paper'\]: paper must be an http\(s\) URL"),
    (lambda r: r["metadata"].update(uses_tta="yes please"),
     r"METADATA\['uses_tta'\]: uses_tta must be true or false, got 'yes please'"),
    (lambda r: r["metadata"].update(params=-5),
     r"METADATA\['params'\]: params must be a whole number of parameters from 1 to "
     r"10,000,000,000,000, got -5"),
    (lambda r: r["metadata"].update(name="x" * 500), r"METADATA\['name'\]: name must be text"),
    (lambda r: r["metadata"].update(name="two\nlines"), r"without control characters"),
    (lambda r: r.pop("metrics"), r"result lacks the field\(s\) metrics"),
    (lambda r: r.update(metrics=[1, 2]), r"result field 'metrics' must be a JSON object"),
])
def test_add_refuses_bad_metadata_and_missing_fields_in_one_sentence(tmp_path, result, edit,
                                                                    needle):
    path, data = result
    _tamper(path, edit)
    with pytest.raises(InvalidValueError, match=needle):
        add_result(path, tmp_path / "board", dataset=data)


def test_cli_names_the_missing_field_without_a_traceback(tmp_path, result):
    path, data = result
    _tamper(path, lambda r: r.pop("metrics"))
    res = CliRunner().invoke(main, ["leaderboard", "add", str(path), "--dir", str(tmp_path / "b"),
                                    "--dataset", str(data)])
    assert res.exit_code == 1
    assert "lacks the field(s) metrics" in res.output
    assert "__init__" not in res.output and "Traceback" not in res.output


def test_build_refuses_a_result_that_skipped_add(tmp_path, result):
    path, _ = result
    board = tmp_path / "board"
    (board / "results").mkdir(parents=True)
    _tamper(path, lambda r: r["metrics"].update(accuracy=0.99, correct=8))
    shutil.copyfile(path, board / "results" / path.name)
    shutil.copyfile(predictions_path(path), predictions_path(board / "results" / path.name))
    with pytest.raises(InvalidValueError, match="metrics.accuracy: claimed 0.99"):
        build_board(board)


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of table cells."""

    def __init__(self):
        super().__init__()
        self.tags, self.cells, self._in_td = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "td":
            self._in_td, self.cells = True, [*self.cells, ""]

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_td = False

    def handle_data(self, data):
        if self._in_td:
            self.cells[-1] += data


def _hostile_board(tmp_path, result) -> Path:
    path, data = result
    _tamper(path, lambda r: r["metadata"].update(name=HOSTILE_NAME,
                                                 url="https://example.org/?a=1&b=\"2\""))
    board = tmp_path / "board"
    added = add_result(path, board, dataset=data)
    assert added.name == HOSTILE_NAME           # accepted: it is text, shown as text
    build_board(board)
    return board


def test_html_and_markdown_in_a_name_stay_text(tmp_path, result):
    board = _hostile_board(tmp_path, result)
    md = (board / "README.md").read_text()
    row = next(line for line in md.splitlines() if "| verified |" in line)
    assert "<script" not in md and "<img" not in md
    assert not re.search(r"(?<!\\)\]\(", md)       # no link: every ']' before '(' is escaped
    assert ("&lt;script&gt;window.\\_\\_pwned=1&lt;/script&gt;&lt;img src=x onerror=\"window"
            ".\\_\\_pwned=2\"&gt;\\[c\\](javascript:alert(1))\\*x\\*") in row
    page = (board / "index.html").read_text()
    parsed = _Tags()
    parsed.feed(page)
    assert [t for t, _ in parsed.tags].count("script") == 1     # the template's own
    assert "img" not in [t for t, _ in parsed.tags]
    assert not [(t, a) for t, a in parsed.tags for k in a if k.startswith("on")]
    hrefs = [a["href"] for t, a in parsed.tags if t == "a"]
    assert hrefs == ['https://example.org/?a=1&b="2"']
    assert HOSTILE_NAME in parsed.cells
    csp = next(a["content"] for t, a in parsed.tags if a.get("http-equiv") ==
               "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp


@pytest.mark.browser
def test_hostile_name_runs_no_script_in_chromium(tmp_path, result):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make browser)")
    sync_playwright = pytest.importorskip("playwright.sync_api",
                                          reason="pip install playwright").sync_playwright

    board = _hostile_board(tmp_path, result)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.goto((board / "index.html").as_uri())
        assert page.evaluate("window.__pwned") is None
        assert page.eval_on_selector_all("table img, table script", "els => els.length") == 0
        names = page.eval_on_selector_all("#board-1 tbody tr",
                                          "rows => rows.map(r => r.cells[1].textContent)")
        assert HOSTILE_NAME in names
        page.click("#board-1 th:has-text('Model')")   # the page's own script still runs (CSP)
        assert page.get_attribute("#board-1 th:has-text('Model')", "aria-sort") == "ascending"
        browser.close()


def test_submission_with_untyped_metadata_fails_at_score_time(tmp_path):
    sub = write_submission(tmp_path, PREDICT_FORM.replace('"uses_tta": False',
                                                          '"uses_tta": "yes please"'))
    with pytest.raises(SubmissionError, match=r"contract.*uses_tta must be true or false"):
        score(sub, dataset=make_dataset(tmp_path / "ds"), limit=1)


# -- the build's cache of checked numbers (leaderboard.checked) ----------------------------------

def _board_with(tmp_path, result, name="board") -> Path:
    path, data = result
    board = tmp_path / name
    add_result(path, board, dataset=data)
    return board


def _cache_file() -> Path:
    from imagenet_hard.home import data_home

    files = sorted((data_home() / "leaderboard" / "checked").glob("*.json"))
    assert len(files) == 1
    return files[0]


def _flip_first_correct(pred: Path, result_json: Path | None) -> None:
    """Relabel row 0 in the predictions (its correct flags: the labels as the board sees them);
    with ``result_json``, record the new file's SHA-256 there so only the numbers disagree."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from imagenet_hard.files import sha256_file

    table = pq.read_table(pred)
    flags = table.column("correct").to_pylist()
    flags[0] = not flags[0]
    table = table.set_column(table.schema.get_field_index("correct"), "correct",
                             pa.array(flags, pa.bool_()))
    pq.write_table(table, pred)
    if result_json is not None:
        _tamper(result_json, lambda r: r["predictions"].update(sha256=sha256_file(pred)))


def _claim_accuracy(path: Path) -> None:
    _tamper(path, lambda r: r["metrics"].update(accuracy=0.99, correct=8))


@pytest.mark.parametrize("change,needle", [
    ("numbers", r"metrics\.accuracy: claimed 0\.99"),
    ("predictions", r"does not match the SHA-256 recorded"),
    ("labels", r"metrics\.correct: claimed \d, the predictions give \d"),
])
def test_a_change_after_a_cached_build_is_caught_as_without_the_cache(tmp_path, result, change,
                                                                     needle):
    """Each board is built once (numbers cached), then one input changes: the next build refuses
    it with the same sentence as a build that never had a cache."""
    errors = {}
    for cached in (True, False):
        board = _board_with(tmp_path, result, f"board-{cached}")
        first = build_board(board, cache=cached)
        assert first.cache_hits == 0
        assert build_board(board, cache=cached).cache_hits == (1 if cached else 0)
        res = next((board / "results").glob("*.json"))
        if change == "numbers":
            _claim_accuracy(res)
        elif change == "predictions":
            _flip_first_correct(predictions_path(res), None)
        else:
            _flip_first_correct(predictions_path(res), res)
        with pytest.raises(InvalidValueError, match=needle) as caught:
            build_board(board, cache=cached)
        errors[cached] = str(caught.value).replace(str(board), "BOARD")
    assert errors[True] == errors[False]


def test_cached_build_equals_uncached(tmp_path, result):
    board = _board_with(tmp_path, result)
    plain = build_board(board, cache=False)
    pages = ((board / "README.md").read_bytes(), (board / "index.html").read_bytes())
    assert build_board(board).cache_hits == 0            # fills the cache
    again = build_board(board)
    assert again.cache_hits == 1
    assert again.entries == plain.entries and again.table == plain.table
    assert ((board / "README.md").read_bytes(), (board / "index.html").read_bytes()) == pages
    name = next(iter(plain.checked))
    assert (again.checked[name].ids.to_pylist() == plain.checked[name].ids.to_pylist()
            and (again.checked[name].correct == plain.checked[name].correct).all())
    # the cache is the build's own, in the data home: nothing of it in the (uploaded) board
    assert not [p for p in board.rglob("*") if "checked" in p.name]
    assert _cache_file().stat().st_size > 0
    assert (_cache_file().parent / "key").stat().st_mode & 0o077 == 0


def _forge_cached_numbers(value: dict) -> None:
    value["metrics"].update(accuracy=0.99, correct=8)


def test_a_cache_edited_by_hand_is_not_trusted(tmp_path, result):
    """Claims invented in the result and the same numbers written into the cache under the
    edited result's key: the MAC of the edited entry fails, the entry is checked from its
    predictions and refused."""
    from imagenet_hard.files import sha256_file
    from imagenet_hard.leaderboard.checked import CheckCache
    from imagenet_hard.score.result import load_result

    board = _board_with(tmp_path, result)
    build_board(board)
    cache = _cache_file()
    doc = json.loads(cache.read_text())
    (item,) = doc["entry"].values()
    _forge_cached_numbers(item["value"])
    res = next((board / "results").glob("*.json"))
    _claim_accuracy(res)
    r = load_result(res)
    key = CheckCache.entry_key(sha256_file(res), "", r.predictions["sha256"],
                               r.dataset["fingerprint"])
    doc["entry"] = {key: item}
    cache.write_text(json.dumps(doc))
    with pytest.raises(InvalidValueError, match=r"metrics\.accuracy: claimed 0\.99"):
        build_board(board)


def test_a_forged_mac_or_a_garbled_cache_is_ignored(tmp_path, result):
    import hashlib
    import hmac

    board = _board_with(tmp_path, result)
    plain = build_board(board, cache=False)
    build_board(board)
    cache = _cache_file()
    doc = json.loads(cache.read_text())
    for key, item in doc["entry"].items():      # a MAC under a key that is not the build's
        _forge_cached_numbers(item["value"])
        text = json.dumps(["1", "entry", key, item["value"]], sort_keys=True,
                          separators=(",", ":"))
        item["mac"] = hmac.new(b"\0" * 32, text.encode(), hashlib.sha256).hexdigest()
    cache.write_text(json.dumps(doc))
    rebuilt = build_board(board)
    assert rebuilt.cache_hits == 0 and rebuilt.entries == plain.entries
    for junk in (b"\x00\xff not json", b"[]", b'{"checks": "1", "entry": {"x": 1}}'):
        cache.write_bytes(junk)
        rebuilt = build_board(board)
        assert rebuilt.cache_hits == 0 and rebuilt.entries == plain.entries
    assert build_board(board).cache_hits == 1       # rewritten by the build, trusted again
