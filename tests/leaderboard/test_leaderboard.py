"""Leaderboard: add checks a result before accepting it, build writes both pages with reported and
verified rows, the HTML sorts in headless Chromium, push goes through an injected Hub API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scoring_data import PREDICT_FORM, make_dataset, write_submission

from imagenet_hard.cli import main
from imagenet_hard.errors import ImHardError, InvalidValueError, MissingFileError
from imagenet_hard.files import sha256_file
from imagenet_hard.leaderboard import add_result, build_board, push_board
from imagenet_hard.score import RunOptions, score
from imagenet_hard.score.sets import default_dataset

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def scored(tmp_path, isolated_home):
    """A controlled result on the local 'published' dataset (<home>/dist/imagenet-hard)."""
    data = make_dataset(default_dataset())
    sub = write_submission(tmp_path, PREDICT_FORM, "oracle.py")
    run = score(sub, out=tmp_path / "out" / "oracle.json", options=RunOptions(batch_size=4))
    return run, data


def _rewrite(run, mutate_json=None, mutate_rows=None):
    """Edit a result consistently (JSON + parquet + its recorded hash), as a forger would."""
    raw = json.loads(run.path.read_text())
    if mutate_rows:
        table = pq.read_table(run.predictions)
        rows = table.to_pylist()
        mutate_rows(rows)
        pq.write_table(table.from_pylist(rows, schema=table.schema), run.predictions)
        raw["predictions"]["sha256"] = sha256_file(run.predictions)
    if mutate_json:
        mutate_json(raw)
    run.path.write_text(json.dumps(raw))


def test_add_accepts_a_checked_result_and_build_shows_it(tmp_path, scored):
    run, _ = scored
    board = tmp_path / "board"
    res = CliRunner().invoke(main, ["leaderboard", "add", str(run.path), "--dir", str(board)])
    assert res.exit_code == 0, res.output
    assert "labels re-checked" in res.output
    assert (board / "results" / "controlled.json").is_file()
    assert (board / "results" / "controlled.predictions.parquet").is_file()
    res = CliRunner().invoke(main, ["leaderboard", "build", "--dir", str(board)])
    assert res.exit_code == 0, res.output
    md = (board / "README.md").read_text()
    line = next(row for row in md.splitlines() if "| Controlled |" in row)
    assert "| verified |" in line and "| 50.00 | 21.52–78.48 | 75.00 | 0.453 | no | no |" in line
    assert "| 66.67 | 0.00 | 66.67 |" in line  # imagenet, imagenet_a, imagenet_r columns
    # One table per dataset: the 8-row local build ranks alone, the published numbers by release.
    # a section ends at the next heading of its level or above (the saturation watch's `##`)
    release = md.split("### ImageNet-Hard release (10,980 rows)")[1].split("\n#")[0]
    table6 = md.split("### paper Table 6 (13,630 rows)")[1].split("\n#")[0]
    assert "| 1 | EfficientNet-L2-NS@800 | reported | 39.00 |" in release
    assert "| ResNet-50 | reported | 14.74 |" in release and "| ResNet-50 | reported | 12.56 |" in table6
    assert "| 1 | Controlled | verified |" in md and "Controlled" not in release + table6
    page = (board / "index.html").read_text()
    assert "<svg" in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_add_rejects_other_data_partial_runs_and_forgeries(tmp_path, scored):
    run, _ = scored
    board = tmp_path / "board"
    with pytest.raises(InvalidValueError, match="scored on dataset"):
        add_result(run.path, board, fingerprint="0" * 64)
    limited = score(run.path.parent.parent / "oracle.py", limit=3, out=tmp_path / "l" / "l.json")
    with pytest.raises(InvalidValueError, match="scored 3 of 8 rows"):
        add_result(limited.path, board)
    backup = run.predictions.read_bytes(), run.path.read_text()

    def restore():
        run.predictions.write_bytes(backup[0])
        run.path.write_text(backup[1])

    _rewrite(run, mutate_json=lambda r: r["metrics"].update(accuracy=0.875, correct=7))
    with pytest.raises(InvalidValueError, match="accuracy: claimed 0.875"):
        add_result(run.path, board)
    restore()

    def flip(rows):  # claim r1 (top-1 class 2, label 7) was correct, numbers made to agree
        rows[1]["correct"] = True

    def claim(raw):
        raw["metrics"].update(correct=5, accuracy=5 / 8)
    _rewrite(run, mutate_json=claim, mutate_rows=flip)
    with pytest.raises(InvalidValueError, match="labels disagree with the predictions"):
        add_result(run.path, board)
    restore()
    run.predictions.write_bytes(backup[0] + b"x")
    with pytest.raises(InvalidValueError, match="changed after scoring"):
        add_result(run.path, board)
    restore()
    shutil.rmtree(default_dataset())
    with pytest.raises(MissingFileError, match="--fingerprint"):
        add_result(run.path, board)
    added = add_result(run.path, board, fingerprint=run.result.dataset["fingerprint"])
    assert not added.checked_labels and added.result.is_file()
    with pytest.raises(InvalidValueError, match="--replace"):
        add_result(run.path, board, fingerprint=run.result.dataset["fingerprint"])
    assert not list((board / "results").glob(".*"))  # nothing half-written


class FakeHfApi:
    def __init__(self, fail_with: str | None = None):
        self.calls, self.fail_with, self.files = [], fail_with, {}

    def create_repo(self, **kw):
        self.calls.append(("create_repo", kw))
        if self.fail_with:
            raise RuntimeError(self.fail_with)

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        root = Path(kw["folder_path"])
        self.files = {str(p.relative_to(root)): p.read_text(errors="replace")
                      for p in root.rglob("*") if p.is_file()}


def test_push_uploads_a_static_space_without_printing_the_token(tmp_path, scored, monkeypatch):
    run, _ = scored
    board = tmp_path / "board"
    add_result(run.path, board)
    build_board(board)
    api = FakeHfApi()
    pushed = push_board("me/ih-board", board, api=api)
    (name, kw), (name2, up) = api.calls
    assert name == "create_repo" and kw["repo_type"] == "space" and kw["space_sdk"] == "static"
    assert kw["repo_id"] == "me/ih-board" and kw["exist_ok"] is True
    assert name2 == "upload_folder" and up["repo_type"] == "space"
    assert api.files["README.md"].startswith("---\n") and "sdk: static" in api.files["README.md"]
    assert "results/controlled.json" in api.files and "<table" in api.files["index.html"]
    assert pushed.url == "https://huggingface.co/spaces/me/ih-board"
    with pytest.raises(ImHardError) as err:
        push_board("me/ih-board", board, token="hf_SECRETSECRET",
                   api=FakeHfApi(fail_with="401 for token hf_SECRETSECRET"))
    assert "hf_SECRETSECRET" not in str(err.value) and "***" in str(err.value)
    # the CLI builds its HfApi from huggingface_hub: inject the fake there
    import huggingface_hub

    fake = FakeHfApi()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: fake)
    monkeypatch.setenv("HF_TOKEN", "hf_ENVTOKEN")
    res = CliRunner().invoke(main, ["leaderboard", "push", "--space", "me/ih", "--dir", str(board)])
    assert res.exit_code == 0, res.output
    assert "huggingface.co/spaces/me/ih" in res.output and "hf_ENVTOKEN" not in res.output
    res = CliRunner().invoke(main, ["leaderboard", "push", "--space", "bad space"])
    assert res.exit_code == 1 and "OWNER/NAME" in res.output


@pytest.mark.browser
def test_board_sorts_by_clicking_headers_in_chromium(tmp_path, scored):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make browser)")
    sync_playwright = pytest.importorskip("playwright.sync_api",
                                          reason="pip install playwright").sync_playwright

    run, _ = scored
    board = tmp_path / "board"
    add_result(run.path, board)
    build_board(board)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto((board / "index.html").as_uri())

        def column(table, i):
            return page.eval_on_selector_all(
                f"{table} tbody tr", f"rows => rows.map(r => r.cells[{i}].textContent.trim())")

        assert column("#board-1", 1) == ["Controlled"]       # its own dataset, ranked alone
        release = "#board-2"                                  # the release's published numbers
        assert len(column(release, 1)) == 77  # 11 card and README rows, 66 open_clip ones
        page.click(f"{release} th:has-text('Model')")
        page.click(f"{release} th:has-text('Top-1 %')")       # numbers sort descending first
        top1 = [float(x) for x in column(release, 3)]
        assert top1 == sorted(top1, reverse=True)
        page.click(f"{release} th:has-text('Top-1 %')")       # and ascending on the second click
        assert [float(x) for x in column(release, 3)] == sorted(top1)
        assert page.get_attribute(f"{release} th:has-text('Top-1 %')", "aria-sort") == "ascending"
        page.click(f"{release} th:has-text('Model')")
        names = [n.lower() for n in column(release, 1)]
        assert names == sorted(names) and names[0] == "alexnet"
        page.click("#board-1 th:has-text('imagenet_a %')")    # sorting one table leaves the others
        assert column(release, 1)[0].lower() == "alexnet"
        shot = tmp_path / "board.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 20_000
