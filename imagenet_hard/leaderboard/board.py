"""``imhard leaderboard build``: write ``README.md`` and ``index.html`` of a board folder."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from ..files import write_bytes_atomic
from . import render, saturation
from .checked import CheckCache, Checked
from .entries import Entry
from .suites import SuiteRow, collect_board


@dataclass
class BoardBuild:
    readme: Path
    html: Path
    entries: list[Entry]
    table: str          # the markdown tables, for printing
    suites: list[SuiteRow]
    watches: list[saturation.VersionWatch] = field(default_factory=list)
    checked: dict[str, Checked] = field(default_factory=dict)   # single results, by file name
    cache_hits: int = 0     # entries whose numbers an earlier build had checked


def _cache(board_dir: Path, home) -> CheckCache:
    try:
        return CheckCache.for_board(board_dir, home)
    except OSError:         # a data home we cannot write: every entry is checked, as before
        return CheckCache.disabled()


def build_board(board_dir: str | Path = "leaderboard", include_reported: bool = True,
                cache: bool = True, home=None) -> BoardBuild:
    """Collect ``board_dir/results/*.json`` (+ the reported rows) and write both pages.

    ``cache``: reuse the numbers an earlier build recomputed from the very same result and
    predictions bytes (:mod:`.checked`, kept in the data home ``home``); every claim is still
    compared with them and every predictions file still hashed."""
    board_dir = Path(board_dir)
    checks = _cache(board_dir, home) if cache else CheckCache.disabled()
    board = collect_board(board_dir, include_reported=include_reported, cache=checks)
    with contextlib.suppress(OSError):
        checks.save()
    watches = saturation.watch(board.entries, board_dir)
    watch_md = saturation.markdown(watches)
    readme = write_bytes_atomic(board_dir / "README.md", (
        render.readme(board.entries, board.suites) + ("\n" + watch_md if watch_md else "")
    ).encode("utf-8"))
    # the watch goes after the tables, before the footer (result texts are escaped: the
    # template's own <footer> is the first)
    page = render.page(board.entries, board.suites)
    page = page.replace("<footer>", saturation.html_section(watches) + "\n<footer>", 1)
    html = write_bytes_atomic(board_dir / "index.html", page.encode("utf-8"))
    return BoardBuild(readme, html, board.entries, render.markdown(board.entries, board.suites),
                      board.suites, watches, board.checked, checks.hits)
