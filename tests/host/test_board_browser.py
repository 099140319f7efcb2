"""A hosted board in headless Chromium: significance marks between neighbours, the comparison
page, the queue with an escaped reason; and the same pages' content checked without a browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagenet_hard.bench.host import generated_results
from imagenet_hard.host import paired
from imagenet_hard.host import queue as q
from imagenet_hard.host.pages import page_name
from imagenet_hard.host.requests import Request, iso, new_id, utc_now
from imagenet_hard.host.worker import rebuild

CHROMIUM = "/usr/bin/chromium"
MARKUP = "<script>document.title='owned'</script>"
HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'


@pytest.fixture
def board(tmp_path):
    """Three entries: the first two a hair apart, the third far below."""
    queue = q.FolderQueue(tmp_path / "board")
    queue.ensure()
    paths = generated_results(queue.root / "results", 3, 3000, accuracies=[0.40, 0.395, 0.20])
    data = json.loads(paths[2].read_text())
    data["metadata"]["name"] = MARKUP                     # a model name is untrusted text too
    paths[2].write_text(json.dumps(data))
    sha = "a" * 64
    req = Request(id=new_id(sha), sha256=sha, file_name="evil.py", submitter="mallory",
                  created=iso(utc_now()))
    queue.file(req, b"x")
    entry = q.claim(queue, "w")
    q.fail(queue, entry, f"ImportError: {HOSTILE}")
    rebuild(queue, queue.root)
    return queue


def test_the_page_marks_each_neighbouring_pair_and_links_its_comparison(board):
    ranked = paired.rankings(paired.load_ranked(board.root / "results"))
    (rows,) = ranked.values()
    pairs = paired.neighbours(rows)
    assert [p.significant for p in pairs] == [False, True]
    page = (board.root / "index.html").read_text()
    assert page.count('data-significant="no"') == 1 and page.count('data-significant="yes"') == 1
    assert HOSTILE not in page and "&lt;img src=x" in page
    assert MARKUP not in page and "&lt;script&gt;document.title" in page
    for a, b in zip(rows, rows[1:], strict=False):
        text = (board.root / "compare" / page_name(a.key, b.key)).read_text()
        assert MARKUP not in text and "<script" not in text


@pytest.mark.browser
def test_the_board_in_chromium(board, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make browser)")
    sync_playwright = pytest.importorskip("playwright.sync_api",
                                          reason="pip install playwright").sync_playwright
    (rows,) = paired.rankings(paired.load_ranked(board.root / "results")).values()
    second = paired.compare(rows[1].ids, rows[1].correct, rows[2].ids, rows[2].correct)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto((board.root / "index.html").as_uri())
        marks = page.eval_on_selector_all(
            "table.significance .sig", "els => els.map(e => [e.textContent, "
            "e.getAttribute('data-significant'), getComputedStyle(e).display])")
        assert [m[:2] for m in marks] == [["not significant", "no"], ["significant", "yes"]]
        assert all(m[2] != "none" for m in marks)                  # shown, not hidden
        failed = page.text_content("table.queue tr[data-status='FAILED']")
        assert HOSTILE in failed                                    # shown as text, not markup
        assert page.title() == "ImageNet-Hard leaderboard"          # no markup ran
        assert page.query_selector("table.queue img") is None
        assert MARKUP in page.text_content("table.significance")
        page.click("table.significance tbody tr:nth-child(2) a:has-text('compare')")
        assert page.url.endswith(page_name(rows[1].key, rows[2].key))
        assert int(page.text_content("#a-only")) == second.a_only
        assert int(page.text_content("#b-only")) == second.b_only
        assert page.get_attribute(".sig", "data-significant") == "yes"
        assert page.title().endswith(MARKUP)                # the name as text; no script ran
        shown = page.text_content("#a-examples")
        assert second.a_examples[0] in shown
        page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
        browser.close()


def test_a_rebuild_from_cached_numbers_writes_the_same_pages(board):
    """The second rebuild takes every entry's numbers and columns from the build's cache (no
    parquet read again) and leaves the unchanged comparison pages as they were."""
    from imagenet_hard.leaderboard import build_board

    pages = sorted((board.root / "compare").glob("*.html"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in pages}
    index = (board.root / "index.html").read_bytes()
    assert build_board(board.root).cache_hits == 3      # the fixture's rebuild filled the cache
    rebuild(board, board.root)
    assert (board.root / "index.html").read_bytes() == index
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in pages} == before
    from_parquet = paired.load_ranked(board.root / "results")
    from_cache = paired.load_ranked(board.root / "results",
                                    build_board(board.root, cache=True).checked)
    assert [(r.key, r.accuracy, r.ids.to_pylist(), r.correct.tolist()) for r in from_parquet] == \
        [(r.key, r.accuracy, r.ids.to_pylist(), r.correct.tolist()) for r in from_cache]
