"""Hosting the benchmark: a queue of submissions from strangers, a worker that scores them in the
sandbox, and a board that says which differences between entries are real.

This subpackage owns the submission queue and its two backends — a board folder (the default,
for a lab's private board; :mod:`.queue`) and a Hub dataset repo (:mod:`.hub`) — the request and
state records and the board's per-submitter limits (:mod:`.requests`), which backend a ``--board``
names (:mod:`.boards`), ``imhard submit``
(:mod:`.submit`), the worker behind ``imhard host run`` (:mod:`.worker`), paired significance
between entries (:mod:`.paired`) and the parts a hosted board adds to the leaderboard's page: the
queue, significance marks and comparison pages (:mod:`.pages`). Scoring is the harness's
(:mod:`imagenet_hard.score`) and the board is the leaderboard's (:mod:`imagenet_hard.leaderboard`):
this package calls both and changes neither.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .boards import open_queue
from .queue import FolderQueue, Queue, claim
from .requests import BoardSettings, Entry, Refused, Request, State

__all__ = ["BoardSettings", "Entry", "FolderQueue", "Queue", "Refused", "Request", "State",
           "claim", "host_run", "open_queue", "status_table"]


def status_table(queue: Queue, now: float | None = None) -> str:
    """The queue as a plain-text table, newest first."""
    from .requests import FAILED, FINISHED, one_line

    now = time.time() if now is None else now
    entries, refused = queue.snapshot()
    rows = [("REQUEST", "FILE", "SUBMITTER", "FILED", "STATUS", "RESULT OR REASON")]
    for e in sorted(entries, key=lambda e: (e.request.created, e.request.id), reverse=True):
        st = e.status(now)
        detail = e.state.reason if st == FAILED else (e.state.result if st == FINISHED else "")
        if st == "RUNNING":
            detail = f"{e.state.worker}, lease {max(0, int(e.state.lease_expires - now))} s"
        rows.append((e.request.id, e.request.file_name, e.request.submitter, e.request.created,
                     st, one_line(detail, 120)))
    rows += [(r.id, "", "", "", FAILED, r.reason) for r in refused]
    if len(rows) == 1:
        return f"no requests on {queue.name}"
    widths = [max(len(r[k]) for r in rows) for k in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  "
                     + r[5] for r in rows)


@dataclass
class HostRun:
    turns: list
    board_dir: Path


def host_run(board: str, dataset=None, home=None, options=None, once: bool = False,
             poll: float = 10.0, board_dir=None, token: str | None = None,
             log=print) -> HostRun:
    """Run the worker on ``board``: score pending requests on ``dataset`` (default the published
    folder of ``home``) until none is left (``once``) or forever."""
    from ..score.sets import published_set
    from .worker import BoardScorer, default_board_dir, default_work, rebuild, run_worker

    queue = open_queue(board, token=token)
    queue.ensure()
    if isinstance(queue, FolderQueue):
        board_dir = Path(board_dir) if board_dir else queue.root
    else:
        board_dir = Path(board_dir) if board_dir else default_board_dir(board, home)
        queue.fetch_results(board_dir / "results")
    settings = queue.settings()
    fp = published_set(dataset, "validation", home).fingerprint
    if settings.fingerprint != fp:
        from dataclasses import replace

        queue.save_settings(replace(settings, fingerprint=fp))
    if options is None:
        from ..score import RunOptions

        options = RunOptions()
    options.no_network = True           # strangers' code never reaches the network
    if options.sandbox == "none":
        options.sandbox = "auto"
    scorer = BoardScorer(queue, board_dir, dataset=dataset, home=home, options=options)
    turns = run_worker(queue, scorer, default_work(home), once=once, poll=poll, log=log)
    rebuild(queue, board_dir, home)     # the queue on the page says how each turn ended
    if hasattr(queue, "upload_board"):
        queue.upload_board(board_dir)
    return HostRun(turns, board_dir)
