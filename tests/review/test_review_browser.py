"""The review page in headless Chromium: decide with the keyboard, undo, reload, check DuckDB."""

from __future__ import annotations

import os

import pytest

from imagenet_hard.review import ReviewStore

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def page():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`, i.e. "
                    "`apt-get install -y chromium`) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.js_errors = errors
            yield page
        finally:
            browser.close()


def current(page) -> str:
    return page.evaluate("document.body.dataset.current")


def wait_saved(page, n: int) -> None:
    page.wait_for_function(f"document.body.dataset.saved === '{n}' && "
                           "document.body.dataset.inflight === '0'")


def test_keyboard_review_survives_undo_and_reload(page, review_server, sample_run, tmp_path):
    page.goto(review_server.url)
    page.wait_for_selector("#top5 li")
    page.wait_for_function("document.getElementById('total').textContent === '9'")
    first = current(page)
    assert first == sample_run.objectnet_ids[0]
    assert page.text_content("#labels").startswith("coffee mug")
    page.keyboard.press("k")
    wait_saved(page, 1)
    second = current(page)
    page.keyboard.press("i")                     # tag: illusion
    assert "on" in page.get_attribute("#tags .chip:nth-child(3)", "class")
    page.keyboard.press("x")
    wait_saved(page, 2)
    third = current(page)
    page.keyboard.press("2")                     # remove: wrong label
    wait_saved(page, 3)
    assert len({first, second, third}) == 3
    page.wait_for_function("document.getElementById('done').textContent === '3'")

    page.keyboard.press("u")
    page.wait_for_function("document.body.dataset.undone === '1' && "
                           "document.body.dataset.inflight === '0'")
    assert current(page) == third                # the undone image is back on screen
    page.wait_for_function("document.getElementById('done').textContent === '2'")

    page.reload()
    page.wait_for_selector("#top5 li")
    page.wait_for_function("document.getElementById('done').textContent === '2'")
    assert current(page) == third                # still pending after a reload
    page.screenshot(path=str(tmp_path / "review.png"))
    assert (tmp_path / "review.png").stat().st_size > 10_000
    assert page.js_errors == []

    review_server.stop()
    with ReviewStore(sample_run.home) as store:
        verdicts = {c["id"]: c for c in store.candidates()}
        events = store.history()
    assert verdicts[first]["verdict"] == "keep"
    assert (verdicts[second]["verdict"], verdicts[second]["tags"]) == ("remove", ["illusion"])
    assert verdicts[third]["verdict"] == "pending"
    assert [e["verdict"] for e in events] == ["keep", "remove", "remove", "undo"]
    assert events[2]["reason"] == "wrong-label" and events[3]["undoes"] == events[2]["seq"]


def set_reviewer(page, name: str) -> None:
    page.fill("#reviewer", name)
    page.keyboard.press("Escape")  # leaves the field, so keys decide again


def test_panel_shows_the_latest_event_after_r_then_k(page, review_server):
    page.goto(review_server.url)
    page.wait_for_selector("#top5 li")
    with page.expect_response("**/api/candidates?verdict=all*"):
        page.select_option("#verdict", "all")  # decided images stay in the queue
    page.keyboard.press("Escape")
    first = current(page)
    set_reviewer(page, "ann")
    page.keyboard.press("k")
    wait_saved(page, 1)
    page.keyboard.press("ArrowLeft")
    assert current(page) == first
    assert "by ann" in page.text_content("#current")

    set_reviewer(page, "bob")
    page.keyboard.press("r")                     # tag: rare case
    page.keyboard.press("k")
    wait_saved(page, 2)
    page.keyboard.press("ArrowLeft")
    assert current(page) == first
    events = page.evaluate("(id) => fetch('/api/history?id=' + encodeURIComponent(id))"
                           ".then((r) => r.json())", first)["events"]
    assert [e["reviewer"] for e in events] == ["ann", "bob"]
    panel = page.text_content("#current")
    assert f"decided {events[-1]['at'].replace('T', ' ')[:19]} UTC by bob" in panel, panel
    assert "rare case" in panel and "ann" not in panel
    assert page.js_errors == []
