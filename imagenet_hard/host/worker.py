"""``imhard host run``: the worker that turns pending requests into board rows.

One turn: claim the oldest pending request (a lease, renewed every third of its length by a
thread while the request runs), check it (the board's limits, the stored file against its
SHA-256, an earlier finished request for the same numbers), write the one ``.py`` alone into a
fresh folder, score it with the harness (the sandbox, always ``--no-network``, weights from the
caches only), check and add the result to the board under the request's id, rebuild the board,
and mark the request FINISHED with where the result is — or FAILED with one line the submitter
sees. A worker killed mid-request leaves its lease to run out; the next worker claims the
request again and the harness resumes from the batch cache of the same home (finished batches
are never predicted twice). A worker that finds its lease taken back writes nothing.

The board-writing token (a Hub board's) is taken out of the environment when the worker starts
(:func:`take_token`) and lives only in the worker's ``HfApi``: the scoring child never inherits
it, and the harness strips secrets from the child's environment besides.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import home as homes
from ..errors import ImHardError
from . import queue as q
from .requests import FAILED, FINISHED, Entry, iso, one_line, utc_now

TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "IMHARD_BOARD_TOKEN")


def take_token() -> str | None:
    """The board token from the environment, removed from it so no child process inherits it."""
    token = None
    for name in TOKEN_VARS:
        value = os.environ.pop(name, None)
        token = token or value
    return token


def worker_name() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}"


@dataclass
class Turn:
    request: str
    status: str                 # FINISHED, FAILED, or LOST (the lease was taken back)
    detail: str = ""
    seconds: float = 0.0


class Lease:
    """Renews ``entry``'s lease in a thread until closed; ``lost`` when another worker took it."""

    def __init__(self, queue: q.Queue, entry: Entry, seconds: float):
        self.queue, self.entry, self.seconds = queue, entry, seconds
        self.lost = False
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            with self._lock:
                try:
                    renewed = q.renew(self.queue, self.entry, self.seconds)
                except ImHardError:
                    continue            # the backend is unreachable now: try at the next beat
                if renewed is None:
                    self.lost = True
                    return
                self.entry = renewed


Scorer = Callable[[Entry, Path], str]


def precheck(queue: q.Queue, entry: Entry, entries: list[Entry], settings) -> tuple[str, str]:
    """(FAILED, reason) or (FINISHED, link of the earlier result) when the request need not
    run; ("", "") when it must."""
    req = entry.request
    if settings.fingerprint and req.fingerprint and req.fingerprint != settings.fingerprint:
        return FAILED, ("the request was filed for another dataset than the board's; "
                        "submit again")
    since = iso(_dt.datetime.strptime(req.created, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=_dt.timezone.utc) - _dt.timedelta(days=1))
    if q.filed_since(entries, req.submitter, since, before=req) >= settings.requests_per_day:
        return FAILED, (f"{req.submitter} is over the board's limit of "
                        f"{settings.requests_per_day} requests a day")
    fp = settings.fingerprint
    dup = next((e for e in entries if e.key(fp) == entry.key(fp) and e.request.id != req.id
                and e.state.status == FINISHED), None)
    if dup is not None:
        return FINISHED, dup.state.result
    return "", ""


def process(queue: q.Queue, entry: Entry, scorer: Scorer, work: Path,
            log: Callable[[str], None]) -> Turn:
    """Run one claimed request to FINISHED or FAILED (or give it up when the lease is lost)."""
    start = time.monotonic()
    settings = queue.settings()
    req = entry.request
    with Lease(queue, entry, float(settings.lease_seconds)) as lease:
        entries, _ = queue.snapshot()
        status, detail = precheck(queue, entry, entries, settings)
        if not status:
            data = queue.read_file(req, settings.max_file_bytes)
            problem = q.verify_file(req, data, settings)
            if problem:
                status, detail = FAILED, problem
            else:
                folder = work / req.id
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                path = folder / req.file_name       # the one .py, alone in its folder
                path.write_bytes(data)
                try:
                    status, detail = FINISHED, scorer(entry, path)
                except ImHardError as exc:
                    status, detail = FAILED, str(exc)
                except Exception as exc:  # a bug of ours: the submitter sees its kind only
                    status, detail = FAILED, f"the worker failed ({type(exc).__name__}); ask the board's host"
                    log(f"{req.id}: internal error {type(exc).__name__}: {one_line(str(exc))}")
        with lease._lock:
            lease._stop.set()
            current, lost = lease.entry, lease.lost
    if lost:
        return Turn(req.id, "LOST", "another worker took the request back", time.monotonic() - start)
    done = (q.finish(queue, current, detail, settings.fingerprint) if status == FINISHED
            else q.fail(queue, current, detail))
    if done is None:
        return Turn(req.id, "LOST", "another worker took the request back", time.monotonic() - start)
    return Turn(req.id, status, one_line(detail), time.monotonic() - start)


def run_worker(queue: q.Queue, scorer: Scorer, work: Path, once: bool = False,
               poll: float = 10.0, name: str | None = None, max_turns: int | None = None,
               log: Callable[[str], None] = print) -> list[Turn]:
    """Claim and process requests until none is pending (``once``) or forever."""
    name = name or worker_name()
    turns: list[Turn] = []
    while max_turns is None or len(turns) < max_turns:
        entry = q.claim(queue, name)
        if entry is None:
            if once:
                break
            time.sleep(poll)
            continue
        log(f"{entry.request.id}: claimed ({entry.request.file_name} by "
            f"{entry.request.submitter}, attempt {entry.state.attempts})")
        turn = process(queue, entry, scorer, work, log)
        log(f"{turn.request}: {turn.status}" + (f" — {turn.detail}" if turn.detail else ""))
        turns.append(turn)
    return turns


@dataclass
class BoardScorer:
    """The real scorer: the harness in its sandbox, then the board."""

    queue: q.Queue
    board_dir: Path
    dataset: str | None = None
    home: str | None = None
    options: object = None
    on_rebuilt: list = field(default_factory=list)

    def __call__(self, entry: Entry, path: Path) -> str:
        return self.add(entry, self.score(entry, path))

    def score(self, entry: Entry, path: Path) -> Path:
        """Score the request's file at ``path``: its result JSON."""
        from ..score import score
        from ..score.suite import score_suite
        from ..score.tta import get_mode

        req = entry.request
        mode = get_mode(req.tta) if req.tta else None
        if req.sets is None:
            return score(path, dataset=self.dataset, home=self.home, options=self.options,
                         tta=mode, out=path.parent / "result.json").path
        sets = None if req.sets == ("all",) else list(req.sets)
        return score_suite(path, sets=sets, dataset=self.dataset, home=self.home,
                           options=self.options, tta=mode,
                           out=path.parent / "result.suite.json").path

    def add(self, entry: Entry, result: Path) -> str:
        """Check ``result`` as ``imhard leaderboard add`` does, put it on the board under the
        request's id, rebuild the board: where the result is now."""
        from ..leaderboard.add import add_result, add_suite

        stage = result.parent / "stage"
        if result.name.endswith(".suite.json"):
            added = add_suite(result, stage, home=self.home, dataset=self.dataset, replace=True)
        else:
            added = add_result(result, stage, dataset=self.dataset, home=self.home, replace=True)
        dest = place_result(added.result, self.board_dir / "results", entry.request.id)
        rebuild(self.queue, self.board_dir, self.home)
        if hasattr(self.queue, "upload_board"):
            self.queue.upload_board(self.board_dir)
            return self.queue.url(f"board/results/{dest.name}")
        return str(dest.resolve())


def place_result(result: Path, results: Path, stem: str) -> Path:
    """Copy an added result and its predictions into ``results`` named by ``stem`` (the request
    id), so two submissions with one METADATA name never overwrite each other."""
    data = json.loads(result.read_text())
    old = result.name.removesuffix(".json").removesuffix(".suite")
    suite = result.name.endswith(".suite.json")
    new = f"{stem}.suite" if suite else stem
    preds = [data["predictions"]] if "predictions" in data else [s["predictions"] for s in data["sets"]]
    results.mkdir(parents=True, exist_ok=True)
    for p in preds:
        name = p["file"].replace(old + (".suite" if suite else ""), new, 1)
        shutil.copyfile(result.parent / p["file"], results / name)
        p["file"] = name
    dest = results / f"{new}.json"
    from ..files import write_json_atomic

    write_json_atomic(dest, data)
    return dest


def rebuild(queue: q.Queue, board_dir: Path, home=None) -> None:
    """The board's pages: the leaderboard, then this host's own parts (queue, significance).
    The leaderboard keeps each entry's checked numbers in ``home`` between rebuilds."""
    from ..leaderboard import build_board
    from .pages import add_host_parts

    board_dir.mkdir(parents=True, exist_ok=True)
    built = build_board(board_dir, home=home)
    add_host_parts(queue, board_dir, built)


def default_work(home=None) -> Path:
    return homes.data_home(home) / "host" / "work"


def default_board_dir(board: str, home=None) -> Path:
    """Where a Hub board is built before upload: ``<home>/host/boards/OWNER__NAME``."""
    return homes.data_home(home) / "host" / "boards" / board.replace("/", "__")


def stamp() -> str:
    return iso(utc_now())
