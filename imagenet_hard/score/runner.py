"""The parent side of a scoring run: start the child in the sandbox with a clean environment, watch
it batch by batch, and turn every way it can fail into one :class:`SubmissionError` saying what the
submission did. Nothing the child sends is trusted (docs/scoring.md, "What the harness reads back").
"""

from __future__ import annotations

import collections
import json
import math
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import sandbox
from ..errors import SubmissionError
from ..sizes import format_size
from .worker import ChildJob, clip

#: Bytes of one line of the child's output kept and forwarded; the rest is cut, and counted.
LINE_BYTES = 4096
#: Lines of the child's output kept for error messages.
TAIL_LINES = 40
#: Bytes of the child's output passed to ``on_output``; after that it is read and dropped (the
#: child must never block on a full pipe), and only the tail is kept.
FORWARD_BYTES = 8 << 20
#: Longest event line: events are a few hundred bytes (an error's traceback is cut at 64 KiB
#: by the worker), so a longer line is a submission writing to the pipe.
EVENT_LINE_BYTES = 1 << 20
#: Event bytes read after the child exits, from a process it left holding the pipe.
DRAIN_BYTES = 4 << 20
#: Longest error text (message or traceback) from an ``error`` event put in a message.
ERROR_TEXT_CHARS = 32 * 1024

_NUM = (int, float)
#: Each event the worker sends: its required fields, then optional ones, with their types.
EVENTS: dict[str, tuple[dict, dict]] = {
    "loaded": ({"form": str, "metadata": dict, "seconds": _NUM}, {}),
    "batch": ({"done": int}, {}),
    "part": ({"n": int, "done": int}, {"seconds": _NUM, "segment": (str, type(None))}),
    "error": ({"stage": str, "message": str},
              {"traceback": (str, type(None)), "rows": (list, type(None)),
               "segment": (str, type(None)), "during": (str, type(None))}),
    "finished": ({}, {}),
}
_TYPE_NAMES = {str: "a string", dict: "an object", int: "an integer", _NUM: "a number",
               (str, type(None)): "a string or null", (list, type(None)): "a list or null"}

@dataclass
class ChildReport:
    form: str = ""
    metadata: dict = field(default_factory=dict)
    load_seconds: float = 0.0
    done: int = 0             # rows finished in the current set
    predicted: int = 0        # rows predicted by this child, all sets together
    segment: str | None = None


class _Watch:
    """Mutable state of one watched child: events, output tail, deadlines."""

    def __init__(self, job: ChildJob, timeout: float, load_timeout: float,
                 name: str = "the submission"):
        self.job, self.timeout, self.load_timeout, self.name = job, timeout, load_timeout, name
        self.report = ChildReport()
        self.error: dict | None = None
        self.finished = False
        self.loaded = False
        self.deadline = time.monotonic() + load_timeout
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.buf = bytearray()
        self.scanned = 0      # bytes at the start of buf known to hold no newline
        # Rows the worker must report in `part` events, per set (a plain run's is None).
        self.expected = {s.name: len(s.indices) for s in job.segments}
        self.tally = dict.fromkeys(self.expected, 0)

    def forged(self, problem: str) -> SubmissionError:
        return SubmissionError(
            f"{self.name} sent the harness a bad event ({problem}): a submission must not write "
            "to the harness's event pipe, so remove what does and score again")

    def check(self, ev) -> dict:
        """``ev`` when it is an event of :data:`EVENTS` with fields of the right types."""
        if not isinstance(ev, dict):
            raise self.forged("not a JSON object")
        kind = ev.get("event")
        if not isinstance(kind, str) or kind not in EVENTS:
            raise self.forged(f"unknown event {_short(kind)}")
        required, optional = EVENTS[kind]
        for key, types in (*required.items(), *optional.items()):
            if key not in ev:
                if key in required:
                    raise self.forged(f"{kind!r} without its field {key!r}")
                continue
            value = ev[key]
            if isinstance(value, bool) or not isinstance(value, types):
                raise self.forged(f"{kind!r} whose field {key!r} is not {_TYPE_NAMES[types]}")
            if isinstance(value, float) and not math.isfinite(value):
                raise self.forged(f"{kind!r} whose field {key!r} is not a finite number")
        return ev

    def handle(self, ev: dict, on_progress) -> None:
        kind = ev["event"]
        if kind == "loaded":
            if self.loaded:
                raise self.forged("a second 'loaded'")
            if ev["form"] not in ("predict", "model") or ev["seconds"] < 0:
                raise self.forged(f"'loaded' with form {_short(ev['form'])} and seconds "
                                  f"{ev['seconds']!r}")
            self.loaded = True
            self.report.form, self.report.metadata = ev["form"], ev["metadata"]
            self.report.load_seconds = ev["seconds"]
        elif kind in ("batch", "part"):
            if not self.loaded:
                raise self.forged(f"{kind!r} before 'loaded'")
            if ev["done"] < 0:
                raise self.forged(f"{kind!r} with done = {ev['done']}")
            if kind == "part":
                self._part(ev, on_progress)
        elif kind == "error":
            rows = ev.get("rows")
            if rows is not None and (len(rows) != 2 or not all(
                    isinstance(r, int) and not isinstance(r, bool) for r in rows)):
                raise self.forged("'error' whose rows are not two row numbers")
            self.error = ev
        elif kind == "finished":
            done, total = sum(self.tally.values()), sum(self.expected.values())
            if self.tally != self.expected:
                raise self.forged(f"'finished' after {done} of the {total} rows it was given")
            self.finished = True
        self.deadline = time.monotonic() + (self.timeout if self.loaded else self.load_timeout)

    def _part(self, ev: dict, on_progress) -> None:
        seg, n = ev.get("segment"), ev["n"]
        if seg not in self.tally:
            raise self.forged(f"'part' of a set not in the job: {_short(seg)}")
        if n < 1 or self.tally[seg] + n > self.expected[seg]:
            raise self.forged(f"'part' of {n} rows, {self.tally[seg] + n} rows in all where the "
                              f"job asked for {self.expected[seg]}")
        self.tally[seg] += n
        if ev["done"] != self.tally[seg]:   # the worker counts the set's rows as the parent does
            raise self.forged(f"'part' with done = {ev['done']} after {self.tally[seg]} rows")
        self.report.done = ev["done"]
        self.report.predicted += n
        self.report.segment = seg
        if on_progress:
            on_progress(n)

    def feed(self, data: bytes, on_progress) -> None:
        """Take bytes from the event pipe; each byte is searched for a newline once."""
        self.buf += data
        while not (self.error or self.finished):
            nl = self.buf.find(b"\n", self.scanned)
            if nl < 0:
                self.scanned = len(self.buf)
                if len(self.buf) > EVENT_LINE_BYTES:
                    raise self.forged(f"a line longer than {format_size(EVENT_LINE_BYTES)}")
                return
            line = bytes(self.buf[:nl])
            del self.buf[:nl + 1]
            self.scanned = 0
            if len(line) > EVENT_LINE_BYTES:
                raise self.forged(f"a line longer than {format_size(EVENT_LINE_BYTES)}")
            if line.strip():
                try:
                    ev = json.loads(line)
                except (ValueError, RecursionError):
                    raise self.forged("a line that is not valid JSON") from None
                self.handle(self.check(ev), on_progress)

    def rows(self) -> str:
        """The rows after the last finished batch: of its set, or of the next when it is done."""
        segs, done, seg = self.job.segments, self.report.done, self.report.segment
        if not segs:
            return "loading the submission"
        names = [s.name for s in segs]
        k = names.index(seg) if seg in names else 0
        if seg not in names or (done >= len(segs[k].indices) and k + 1 < len(names)):
            k, done = (k + 1 if seg in names else 0), 0
        indices, of = segs[k].indices, f" of set {names[k]}" if names[k] else ""
        idx = indices[done:done + self.job.batch_size]
        return f"rows {idx[0]}–{idx[-1]}{of}" if idx else "the end of the data"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _forward(stream, tail, on_output) -> None:
    """Pass the child's output on line by line, read in fixed-size chunks: a line keeps its first
    :data:`LINE_BYTES` bytes (the rest is counted, not kept), and after :data:`FORWARD_BYTES`
    only ``tail`` follows; read to the end either way, so the child never blocks on the pipe."""
    fd = stream.fileno()
    line, cut, shown = bytearray(), 0, 0

    def emit() -> None:
        nonlocal shown
        text = line.decode("utf-8", "replace") + (f" [… {cut} bytes cut]" if cut else "")
        tail.append(text)
        if on_output and shown < FORWARD_BYTES:
            shown += len(text) + 1
            if shown > FORWARD_BYTES:
                text = (f"[… the submission's further output not shown: it passed "
                        f"{format_size(FORWARD_BYTES)}]")
            on_output(text)

    while chunk := os.read(fd, 1 << 16):
        pos = 0
        while pos < len(chunk):
            nl = chunk.find(b"\n", pos)
            end = len(chunk) if nl < 0 else nl
            take = min(LINE_BYTES - len(line), end - pos)
            line += chunk[pos:pos + take]
            cut += end - pos - take
            if nl < 0:
                break
            emit()
            line.clear()
            cut, pos = 0, nl + 1
    if line or cut:
        emit()


def _kill(proc: subprocess.Popen) -> None:
    """Kill the child's whole process group (its DataLoader workers included)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _spawn(job: ChildJob, how: str, no_network: bool, fd: int, jobfile: Path,
           label_files=(), environ=None) -> tuple[subprocess.Popen, sandbox.Plan | None]:
    """Start the worker on ``jobfile``: inside the sandbox ``how`` (:func:`sandbox.choose`), or
    bare; with the environment less its secrets, or ``environ`` whole (``fetch-weights``)."""
    # -W: unconfined, the real package's __init__ has imported the worker before runpy runs it.
    cmd = [sys.executable, "-W", "ignore::RuntimeWarning:runpy", "-m",
           "imagenet_hard.score.worker", str(jobfile), str(fd)]
    env = sandbox.child_env() if environ is None else {**environ, "PYTHONUNBUFFERED": "1"}
    plan = None
    if how == "none":
        cmd = [*(sandbox.network_prefix() if no_network else []), *cmd]
    else:
        read_only, writable = job.mounts(str(jobfile))
        plan = sandbox.make_plan(read_only, writable, env, device=job.device,
                                 no_network=no_network, memory_limit=job.memory_limit,
                                 label_files=label_files)
        cmd, env = sandbox.wrap(how, plan, cmd), plan.env
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, pass_fds=(fd,), start_new_session=True)
    except BaseException:
        if plan:
            plan.cleanup()
        raise
    return proc, plan


def run_child(job: ChildJob, name: str, timeout: float = 600.0, load_timeout: float = 1800.0,
              no_network: bool = False, on_output: Callable[[str], None] | None = None,
              on_progress: Callable[[int], None] | None = None,
              sandbox_tool: str = "auto", label_files=(), environ=None) -> ChildReport:
    """Run one job in a sandboxed child process (``sandbox_tool``: see :data:`sandbox.TOOLS`);
    return its report or raise :class:`SubmissionError`. Every process the child started is
    gone when this returns. ``label_files``: the scored data's labelled files, which the sandbox
    refuses to show (:func:`sandbox.check_no_labels`)."""
    how = sandbox.choose(sandbox_tool, no_network)
    jobfile = _write_job(job)
    try:
        return _run(job, name, how, jobfile, timeout, load_timeout, no_network, on_output,
                    on_progress, label_files, environ)
    finally:
        shutil.rmtree(jobfile.parent, ignore_errors=True)


def _write_job(job: ChildJob) -> Path:
    """The job file, in a new private folder of the parent's: the child only ever sees the file,
    read-only, so nothing it does can make a later write of the parent land elsewhere."""
    folder = Path(tempfile.mkdtemp(prefix="imhard-job-"))
    jobfile = folder / "job.json"
    fd = os.open(jobfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(job), f)
    return jobfile


def _run(job, name, how, jobfile, timeout, load_timeout, no_network, on_output, on_progress,
         label_files, environ) -> ChildReport:
    rfd, wfd = os.pipe()
    try:
        proc, plan = _spawn(job, how, no_network, wfd, jobfile, label_files, environ)
    finally:
        os.close(wfd)
    w = _Watch(job, timeout, load_timeout, name)
    reader = threading.Thread(target=_forward, args=(proc.stdout, w.tail, on_output), daemon=True)
    reader.start()
    try:
        _watch(proc, rfd, w, on_progress, name)
    finally:
        os.close(rfd)
        if proc.poll() is None:
            _kill(proc)
        reader.join(timeout=5)
        if reader.is_alive():  # a DataLoader worker outlived the child and holds its stdout
            _kill(proc)
        if plan:
            plan.cleanup()
    if plan and proc.returncode and 128 < proc.returncode < 128 + signal.NSIG:
        # Both sandboxes report a child killed by signal N as status 128 + N, as a shell does.
        proc.returncode = 128 - proc.returncode
    _raise_for(proc, w, name, sandboxed=plan is not None)
    return w.report


def _watch(proc, rfd: int, w: _Watch, on_progress, name: str) -> None:
    eof = False
    while not eof:
        ready, _, _ = select.select([rfd], [], [], 0.25)
        if ready:
            data = os.read(rfd, 1 << 16)
            eof = not data
            w.feed(data, on_progress)
        elif proc.poll() is not None:
            # The child is gone; a forked DataLoader worker may still hold the pipe open (and
            # write to it for ever: read what is there, up to a bound).
            left = DRAIN_BYTES
            while (left > 0 and select.select([rfd], [], [], 0)[0]
                   and (data := os.read(rfd, 1 << 16))):
                w.feed(data, on_progress)
                left -= len(data)
            break
        if w.error or w.finished:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:  # e.g. a non-daemon thread of the submission
                _kill(proc)
                proc.returncode = 0 if w.finished else proc.returncode
            return
        if time.monotonic() > w.deadline:
            _kill(proc)
            limit = (f"--timeout {w.timeout:g} s" if w.loaded
                     else f"--load-timeout {w.load_timeout:g} s (import and load)")
            what = f"the batch at {w.rows()}" if w.loaded else "loading the submission"
            raise SubmissionError(f"{name}: {what} exceeded {limit}; the process was killed. "
                                  f"Finished batches are kept: rerun (with a larger limit) to resume."
                                  + _tail_text(w.tail))
    proc.wait()


def _tail_text(tail) -> str:
    lines = [t for t in tail if t.strip()][-15:]
    return ("\n--- last output of the submission ---\n" + "\n".join(lines)) if lines else ""


def _raise_for(proc: subprocess.Popen, w: _Watch, name: str, sandboxed: bool = True) -> None:
    if w.error:
        e = w.error
        rows = e.get("rows")
        where = f" on rows {rows[0]}–{rows[1]}" if rows else ""
        where += f" of set {e['segment']}" if e.get("segment") else ""
        head = {
            "import": f"{name}: importing the submission failed",
            "contract": f"{name} does not follow the submission contract",
            "load": f"{name}: loading the model failed",
            "predict": f"{name}: the submission raised an exception{where}",
            "output": f"{name}: bad output{where}",
        }.get(e["stage"], f"{name}: failed in {e['stage']}")
        if e["stage"] == "memory":
            where = where or {"import": " while importing", "load": " while loading the model"}.get(
                e.get("during"), "")
            raise SubmissionError(_memory_message(name, where, w.job.memory_limit,
                                                  clip(e["message"], ERROR_TEXT_CHARS)))
        body = clip(e["traceback"].rstrip() if e.get("traceback") else e["message"],
                    ERROR_TEXT_CHARS)
        # fetch-weights itself runs unconfined: sending it to fetch-weights would go round
        if sandboxed and ("Read-only file system" in body or "MissingWeightsError" in body):
            body += ("\n(The sandbox is read-only apart from /tmp and the output folder and never "
                     f"downloads weights: {fetch_hint(w.job.submission)}.)")
        raise SubmissionError(f"{head}:\n{body}" if "\n" in body else f"{head}: {body}")
    if w.finished and proc.returncode == 0:
        return
    rc = proc.returncode
    if rc is not None and rc < 0:
        how = f"died from signal {signal.Signals(-rc).name}"
    else:
        how = f"exited with status {rc} before finishing"
    raise SubmissionError(f"{name}: the submission process {how} while working on {w.rows()}. "
                          "Finished batches are kept: rerun the same command to resume."
                          + _tail_text(w.tail))


def fetch_command(submission: str | Path) -> str:
    """The command that fetches ``submission``'s weights, with the path as short as it is true
    here: relative to the working folder when the file is under it."""
    path = os.path.abspath(os.path.expanduser(str(submission)))
    rel = os.path.relpath(path)
    shown = rel if not rel.startswith(os.pardir) else path
    return f"imhard fetch-weights {shlex.quote(shown)}"


def fetch_hint(submission: str | Path) -> str:
    """What to do when a submission could not get its weights inside the sandbox."""
    return (f"fetch them first with `{fetch_command(submission)}`, which imports and loads the "
            "file unconfined and with network (only for a file you trust), then score again")


def _memory_message(name: str, where: str, limit: int | None, detail: str) -> str:
    if limit is None:
        return f"{name} ran out of memory{where} ({detail}) with no --memory-limit set."
    return (f"{name} ran out of memory{where}: it may use {format_size(limit)} "
            f"(--memory-limit), so raise it (to --memory-limit "
            f"{max(2, round(2 * limit / 1024 ** 3))}G) or lower --batch-size ({detail}).")
