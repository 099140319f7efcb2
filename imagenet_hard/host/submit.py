"""``imhard submit``: check a submission file here, the way ``imhard score`` runs it, then file a
request on a board — unless the same numbers were asked for already.

The local check runs the file through the scoring harness itself (the same sandboxed child,
contract and output checks as ``score``) on two generated images in a throw-away home: it
imports, ``METADATA`` is valid, and one batch of two images gives a ``(2, 1000)`` answer. A
duplicate — same file SHA-256, board dataset fingerprint, protocol and TTA mode, not failed —
is answered with the existing request and its result.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import io
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidValueError
from ..files import read_regular, sha256_bytes
from ..score.harness import submission_file
from .boards import open_queue
from .queue import FolderQueue, Queue, duplicate_of, filed_since
from .requests import FILE_NAME_RE, SUBMITTER_RE, Entry, Request, iso, new_id, utc_now


@dataclass
class Submitted:
    request: Request
    duplicate: Entry | None         # the earlier request that answers this one
    board: str

    def summary(self) -> str:
        if self.duplicate is not None:
            d = self.duplicate
            where = f"; result: {d.state.result}" if d.state.result else ""
            return (f"already requested: {d.request.id} ({d.state.status}{where}) asks for the "
                    f"same file, dataset, protocol and mode; nothing new was filed.\n"
                    f"follow it: imhard host status --board {self.board}")
        return (f"filed request {self.request.id} ({self.request.file_name}, "
                f"sha256 {self.request.sha256[:12]}…) on {self.board}\n"
                f"follow it: imhard host status --board {self.board}")


def default_submitter() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "anonymous"
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:64].lstrip("-._") or "anonymous"
    return name


def check_images() -> list[bytes]:
    """Two small generated photos-to-be (gradients), PNG-encoded."""
    from PIL import Image

    from ..pixels import to_rgb

    out = []
    for k, size in enumerate(((96, 64), (64, 80))):
        im = to_rgb(Image.linear_gradient("L").resize(size))
        if k:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def check_contract(submission: str | Path, options=None, tta=None) -> None:
    """Run ``submission`` as ``imhard score`` would, on one batch of two generated images; a
    :class:`~imagenet_hard.errors.SubmissionError` says what failed."""
    import datasets

    from ..score.harness import RunOptions, predict, prepare
    from ..score.sets import published_set, write_folder

    opts = options or RunOptions()
    opts.batch_size = 2
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()        # the two images' bars say nothing to a submitter
    with tempfile.TemporaryDirectory(prefix="imhard-submit-check-") as tmp:
        root = Path(tmp)

        def sets():   # opened once the file and the sandbox are checked, as a score run does
            write_folder(root / "data", check_images(), [[0], [1]], ["check", "check"],
                         ["check-0", "check-1"])
            return [(published_set(root / "data", "validation", root / "home"), [0, 1], {0, 1})]

        try:
            sub, _, _, asks = prepare(submission, sets, None, root / "home", opts, tta)
            predict(sub, asks, opts, tta, named=False)
        finally:
            if shown:
                datasets.enable_progress_bars()


def submit(submission: str | Path, board: str, sets: list[str] | None = None,
           tta: str | None = None, submitter: str | None = None, options=None,
           check: bool = True, queue: Queue | None = None) -> Submitted:
    """Check ``submission`` locally and file a request on ``board`` (a folder or a Hub
    dataset ``OWNER/NAME``)."""
    sub = submission_file(submission)
    if not FILE_NAME_RE.fullmatch(sub.name):
        raise InvalidValueError(f"{sub.name}: a submitted file's name must be letters, digits, "
                                "_ and - then .py (at most 80); rename it")
    submitter = submitter or default_submitter()
    if not SUBMITTER_RE.fullmatch(submitter):
        raise InvalidValueError(f"--submitter {submitter!r:.60} must be 1–64 letters, digits, "
                                "_ . -")
    queue = queue or open_queue(board)
    if isinstance(queue, FolderQueue):
        queue.ensure()                  # a lab's folder board starts with its first request
    settings = queue.settings()
    data = read_regular(sub, settings.max_file_bytes)
    if data is None:
        raise InvalidValueError(f"{sub} is larger than the board's limit of "
                                f"{settings.max_file_bytes:,} bytes (or not a regular file)")
    sha, now = sha256_bytes(data), utc_now()
    request = Request(id=new_id(sha, now), sha256=sha, file_name=sub.name, submitter=submitter,
                      created=iso(now), sets=tuple(sets) if sets else None, tta=tta,
                      fingerprint=settings.fingerprint, size=len(data))
    entries, _ = queue.snapshot()
    dup = duplicate_of(entries, request, settings.fingerprint)
    if dup is not None:
        return Submitted(request, dup, board)
    since = iso(now - _dt.timedelta(days=1))
    if filed_since(entries, submitter, since) >= settings.requests_per_day:
        raise InvalidValueError(f"{submitter} filed {settings.requests_per_day} requests on this "
                                "board in the last 24 hours, its daily limit; try again tomorrow")
    if check:
        from ..score.tta import get_mode

        check_contract(sub, options, get_mode(tta) if tta else None)
    queue.file(request, data)
    return Submitted(request, None, board)
