"""The offline end-to-end demo: every stage of the pipeline on the ``sample`` source and
ImageNet-C corruptions of it.

It is what ``make demo`` runs: build → mine → review → publish → score → leaderboard → the zoom
analyses of an exhaustive run → a hosted board fed through its queue, each step through the
same library functions the CLI uses, printing what a user would see, then one line per stage with its time and what to open next.

It runs in a home of its own (default ``<cache>/imagenet-hard-demo``, marked as the demo's and
emptied at each start), so a second run gives the same result as the first and nothing lands in
the user's real data home. The short tour (default) corrupts two photos with three of the paper's
six corruptions and judges every crop of two photos for the analyses; ``full`` does all six
corruptions and all nine photos.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from . import home as homes
from .errors import ImHardError
from .sources import build, build_derived


def _print_table(path, echo: Callable[[str], None]) -> None:
    table = pq.read_table(path, columns=["id", "label", "english_label", "width", "height"])
    echo(f"{'id':<40} {'label':<12} {'english_label':<32} size")
    for row in table.to_pylist():
        names = ", ".join(row["english_label"])
        echo(f"{row['id']:<40} {str(row['label']):<12} {names[:32]:<32} "
             f"{row['width']}x{row['height']}")


#: The demo's ImageNet-C part: the paper's corruptions at one severity, on two photos the judge
#: gets right at its first crop: the cat stays right under each of them, frost makes the rocket
#: a candidate (the horse, a candidate before any corruption, would only cost 972 more crops).
DEMO_SEVERITY = 3
DEMO_CORRUPTED_PHOTOS = ("sample/n02123045/chelsea.png", "sample/n03773504/rocket.jpg")
#: Marks a folder as the demo's own home, which the demo may empty.
MARKER = ".imhard-demo"


@dataclass
class Tour:
    """What the demo covers: the short tour by default, ``full=True`` for every corruption."""

    full: bool = False
    times: list[tuple[str, float]] = field(default_factory=list)
    opened: dict[str, Path] = field(default_factory=dict)   # what to open next

    @property
    def corruptions(self) -> tuple[str, ...]:
        from .corruptions import PAPER_SIX

        return tuple(PAPER_SIX) if self.full else tuple(PAPER_SIX)[:3]

    @property
    def exhaustive_photos(self) -> int | None:
        """Photos the analysis step judges on all 324 crops: the first two by id on the short
        tour (the cat, right at the first crop, and the horse, the sample's candidate), every
        one on the full tour."""
        return None if self.full else 2


def step_build(home, echo, tour: Tour) -> None:
    echo("== 1. build: the offline sample source, and full-resolution ImageNet-C from it ==")
    res = build("sample", home=home)
    echo(f"sample: {res.kept} images, {res.rejected} rejected → {res.table}"
         + (" (already built)" if res.skipped else ""))
    _print_table(res.table, echo)
    tables = build_derived("imagenet-c", home=home, base="sample", corruptions=tour.corruptions,
                           severities=[DEMO_SEVERITY], ids=DEMO_CORRUPTED_PHOTOS)
    echo(f"imagenet-c: {len(tour.corruptions)} of the paper's six corruptions at severity "
         f"{DEMO_SEVERITY} on the cat and the rocket (reference backend, JPEG "
         "quality 85)")
    for t in tables:
        echo(f"  {t.name:<28} {t.kept} images → {t.table.name}"
             + (" (already built)" if t.skipped else ""))


DEMO_RUN = "demo-efficientnet-lite0-c"


def step_mine(home, echo, tour: Tour) -> None:
    from .mining import mine

    echo("== 2. mine: 324 zoom crops per image, judged by the offline EfficientNet-Lite0 ==")
    # the demo's own tables by name: `imagenet-c/*` would also take any others built here
    sources = ["sample", *(f"imagenet-c/{n}/{DEMO_SEVERITY}" for n in tour.corruptions)]
    res = mine(sources, "efficientnet-lite0", home=home, run=DEMO_RUN, device="cpu")
    s = res.summary
    echo(f"{s.candidates} of {s.images} images survive every zoom; "
         f"{s.forward_passes_per_image} forward passes per image (of 324) with early exit")
    for origin, c in s.per_origin.items():
        echo(f"  {origin:<28} {c.candidates} of {c.images}")
    for row in res.candidates().to_pylist():
        echo(f"  candidate {row['id']}: label {row['label']}, judge's top-5 {row['top5']}")


def step_review(home, echo, tour: Tour) -> None:
    import json
    import urllib.request

    from .review import ReviewStore, format_status, start_server

    echo("== 3. review: decisions through the review server's JSON API ==")
    with ReviewStore(home) as store:
        imported = store.import_run(DEMO_RUN)
    echo(f"imported {imported.candidates} candidates into {homes.review_db(home)}")
    server = start_server(home=home, port=0)

    def call(path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(server.url + path, data,
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    try:
        ids = [c["id"] for c in call("api/candidates?verdict=pending&limit=3")["candidates"]]
        verdicts = [{"verdict": "keep"},
                    {"verdict": "remove", "reason": "ill-posed", "tags": ["many-objects"]},
                    {"verdict": "keep", "tags": ["lack-of-information"]}]
        for cid, v in zip(ids, verdicts, strict=False):
            call("api/decisions", {"id": cid, "reviewer": "demo", **v})
            echo(f"  {v['verdict']:<6} {cid}")
    finally:
        server.stop()
    with ReviewStore(home) as store:
        echo(format_status(store.status()))


def step_publish(home, echo, tour: Tour) -> None:
    import datasets

    from .publish import check, publish
    from .review import current_decisions

    echo("== 4. publish: parquet shards + dataset card, loaded back with `datasets` ==")
    res = publish(DEMO_RUN, current_decisions(home), home=home, include_pending=True)
    report = check(res.out)
    if not report.ok:
        raise ImHardError(f"published folder {res.out} failed its check: {'; '.join(report.problems)}")
    ds = datasets.load_dataset(str(res.out), split="validation")
    echo(f"published {res.rows} rows {dict(res.by_origin)} → {res.out}")
    echo(f"fingerprint {res.fingerprint}")
    echo(f"datasets.load_dataset → {len(ds)} rows, features: {', '.join(ds.features)}")
    tour.opened["the published card"] = res.out / "README.md"


def step_score(home, echo, tour: Tour) -> None:
    from .leaderboard import add_result, build_board
    from .leaderboard.render import markdown
    from .score import RunOptions, score
    from .score.examples import write_example_submission

    echo("== 5. score: the offline EfficientNet-Lite0 submission, then the leaderboard ==")
    sub = write_example_submission(home / "submissions" / "efficientnet_lite0.py")
    run = score(sub, home=home, out=homes.scores_dir(home) / "efficientnet_lite0.json",
                options=RunOptions(batch_size=8))
    echo(run.result.summary())
    add_result(run.path, home / "leaderboard", home=home, replace=True)
    board = build_board(home / "leaderboard", home=home)
    # The page holds the reported rows too; the terminal shows what this demo verified.
    ours = [e for e in board.entries if e.status != "reported"]
    echo(markdown(ours, []))
    echo(f"board: {board.html} ({len(board.entries) - len(ours)} reported rows on the page)")
    tour.opened["the board page"] = board.html


def step_suite(home, echo, tour: Tour) -> None:
    """The same submission on every set the demo built, each under its own protocol (the
    published set's predictions come from step 5's cache)."""
    from .score import RunOptions
    from .score.examples import write_example_submission
    from .score.suite import score_suite

    echo("== 6. score --suite: every built set, each with its own protocol ==")
    sub = write_example_submission(home / "submissions" / "efficientnet_lite0.py")
    run = score_suite(sub, home=home, out=homes.scores_dir(home) / "efficientnet_lite0.suite.json",
                      options=RunOptions(batch_size=8))
    echo(run.result.summary())
    echo(f"suite result: {run.path}")


DEMO_EXHAUSTIVE_RUN = "demo-efficientnet-lite0-exhaustive"


def step_analyze(home, echo, tour: Tour) -> None:
    from .analysis.report import analyze_run
    from .mining import mine

    echo("== 7. analyze: every zoom crop judged (exhaustive), the paper's zoom analyses ==")
    run = mine(["sample"], "efficientnet-lite0", home=home, run=DEMO_EXHAUSTIVE_RUN,
               exhaustive=True, device="cpu", limit=tour.exhaustive_photos)
    s = run.summary
    echo(f"judged all 324 crops and the standard 1-crop of {s.images} images "
         f"({s.forward_passes} forward passes): {s.candidates} candidates")
    report = analyze_run(run.name, home=home)
    echo(report.summary())
    echo(f"report: {report.report}")
    echo(f"plots: {', '.join(str(p) for p in report.plots)}")
    tour.opened["the analysis report"] = report.report


def step_host(home, echo, tour: Tour) -> None:
    """The same submission through a hosted board's queue: submitted, claimed and scored by the
    worker in the sandbox (its batches come from step 5's cache), shown verified."""
    from .host import host_run, status_table
    from .host.boards import open_queue
    from .host.submit import submit
    from .score import RunOptions
    from .score.examples import write_example_submission

    echo("== 8. host: a folder board fed through its queue (imhard submit, imhard host run) ==")
    board = home / "board"
    sub = write_example_submission(home / "submissions" / "efficientnet_lite0.py")
    # `imhard submit` first runs the file on two images in the sandbox; step 5 scored this very
    # file, so the demo skips that child start (about 10 s) and files the request at once.
    echo(submit(sub, str(board), submitter="demo", check=False).summary())
    done = host_run(str(board), home=home, once=True, options=RunOptions(batch_size=8),
                    log=lambda line: echo(f"  worker: {line}"))
    echo(status_table(open_queue(str(board))))
    verified = (done.board_dir / "index.html").read_text(encoding="utf-8").count(
        '<tr class="verified"')
    echo(f"board: {done.board_dir / 'index.html'} (verified rows: {verified}, beside the "
         "reported ones; the queue below them)")
    tour.opened["the hosted board"] = done.board_dir / "index.html"


STEPS = [("build", step_build), ("mine", step_mine), ("review", step_review),
         ("publish", step_publish), ("score", step_score), ("suite", step_suite),
         ("analyze", step_analyze), ("host", step_host)]


def demo_home(home=None) -> Path:
    """The demo's own home: ``home`` when given, else ``<cache>/imagenet-hard-demo``."""
    if home is not None:
        return Path(home).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache, "imagenet-hard-demo").expanduser().resolve()


def _fresh(home: Path) -> None:
    """Empty the demo's home; refuse a folder with anything else in it (a real data home)."""
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).is_file():
            raise ImHardError(f"{home} is not empty and not a demo home; pass --home with an "
                              "empty or new folder (the demo empties its home at each start)")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("made by `imhard demo`, which empties this folder at each start\n")


def run_demo(home=None, echo: Callable[[str], None] = print, full: bool = False) -> Tour:
    """Run every stage in the demo's own, emptied home; returns the timings and what to open."""
    home = demo_home(home)
    _fresh(home)
    tour = Tour(full=full)
    echo(f"data home: {home} (the demo's own, emptied at each start)")
    for name, step in STEPS:
        t0 = time.perf_counter()
        step(home, echo, tour)
        tour.times.append((name, time.perf_counter() - t0))
        echo("")
    echo("== done ==")
    for name, seconds in tour.times:
        echo(f"  {name:<8} {seconds:6.1f} s")
    echo(f"  {'total':<8} {sum(t for _, t in tour.times):6.1f} s")
    for what, path in tour.opened.items():
        echo(f"open {what}: {path}")
    echo("next: score your own model with `imhard score my_model.py` (README, Score your model)"
         + ("" if full else "; `imhard demo --full` tours all six corruptions"))
    return tour
