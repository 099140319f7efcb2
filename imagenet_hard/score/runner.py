"""The parent side of a scoring run: start the child with a clean environment inside the sandbox
(:mod:`imagenet_hard.score.sandbox`), watch it batch by batch, and turn every way it can fail into
one :class:`~imagenet_hard.errors.SubmissionError` whose message shows what the submission did.
"""

from __future__ import annotations

import collections
import json
import os
import re
import select
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

from ..errors import SubmissionError
from . import sandbox

#: Environment variables never passed to a submission: tokens, keys, passwords, cloud credentials.
SECRET_ENV = re.compile(
    r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|_KEY$|^KEY$|^AWS_|^GITHUB_|^GH_|^GITLAB_|^AZURE_|"
    r"^GOOGLE_|^GCP_|^GCLOUD_|^HUGGING_FACE_HUB_|^KAGGLE_|^OPENAI_|^ANTHROPIC_|^WANDB_|^NETRC|"
    r"^SSH_AUTH_SOCK$|^ACTIONS_|^CI_JOB_JWT", re.IGNORECASE)


def child_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without secrets; the Hub token file is hidden too."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items()
           if not SECRET_ENV.search(k)}
    env["HF_TOKEN_PATH"] = os.devnull          # huggingface_hub would read ~/.cache/.../token
    env["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def network_prefix() -> list[str]:
    """The command prefix that runs a program in a new, empty network namespace, or an error."""
    if shutil.which("unshare") is None:
        raise SubmissionError("--no-network needs util-linux `unshare` (apt-get install util-linux)")
    tries = [["unshare", "--net"], ["unshare", "--map-root-user", "--net"]]
    if os.geteuid() != 0:
        tries.reverse()
    errors = []
    for prefix in tries:
        res = subprocess.run([*prefix, "true"], capture_output=True, text=True)
        if res.returncode == 0:
            return prefix
        errors.append(f"`{' '.join(prefix)}`: {res.stderr.strip() or res.returncode}")
    raise SubmissionError(
        "--no-network: this kernel refused a new network namespace (" + "; ".join(errors) + "). "
        "Allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 or "
        "user.max_user_namespaces > 0), run as root, or score inside a container without network.")


@dataclass
class ChildJob:
    submission: str
    device: str
    batch_size: int
    workers: int
    arrow_files: list[str]
    indices: list[int]
    out_dir: str
    memory_limit: int | None = None    # bytes of data memory (RLIMIT_DATA); None: no limit
    #: A suite job: one dict per scored set (``name``, ``arrow_files``, ``indices``, ``out_dir``,
    #: ``classes``, ``border``, and ``read_only``: image folders its Arrow files point into).
    segments: list[dict] | None = None
    tta: dict | None = None   # score.tta: crop set, aggregation, crops per forward pass

    def mounts(self) -> tuple[list[str], list[str]]:
        """(read-only, writable) paths the sandbox must show the child."""
        read_only, writable = [self.submission, *self.arrow_files], [self.out_dir]
        for seg in self.segments or []:
            read_only += [*seg["arrow_files"], *seg.get("read_only", [])]
            writable.append(seg["out_dir"])
        return read_only, writable


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

    def __init__(self, job: ChildJob, timeout: float, load_timeout: float):
        self.job, self.timeout, self.load_timeout = job, timeout, load_timeout
        self.report = ChildReport()
        self.error: dict | None = None
        self.finished = False
        self.loaded = False
        self.deadline = time.monotonic() + load_timeout
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self.buf = b""

    def handle(self, ev: dict, on_progress) -> None:
        kind = ev.get("event")
        if kind == "loaded":
            self.loaded = True
            self.report.form, self.report.metadata = ev["form"], ev["metadata"]
            self.report.load_seconds = ev["seconds"]
        elif kind == "part":
            self.report.done = ev["done"]
            self.report.predicted += ev["n"]
            self.report.segment = ev.get("segment")
            if on_progress:
                on_progress(ev["n"])
        elif kind == "error":
            self.error = ev
        elif kind == "finished":
            self.finished = True
        self.deadline = time.monotonic() + (self.timeout if self.loaded else self.load_timeout)

    def feed(self, data: bytes, on_progress) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                self.handle(json.loads(line), on_progress)

    def rows(self) -> str:
        indices, done, of = self.job.indices, self.report.done, ""
        if self.job.segments:  # the set after the last finished batch's (its own, if rows remain)
            names = [s.get("name") for s in self.job.segments]
            k = names.index(self.report.segment) if self.report.segment in names else 0
            if self.report.segment not in names or (done >= len(self.job.segments[k]["indices"])
                                                    and k + 1 < len(names)):
                k, done = (k + 1 if self.report.segment in names else 0), 0
            indices, of = self.job.segments[k]["indices"], f" of set {names[k]}"
        idx = indices[done:done + self.job.batch_size]
        return f"rows {idx[0]}–{idx[-1]}{of}" if idx else "the end of the data"


def _forward(stream, tail, on_output) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        tail.append(line)
        if on_output:
            on_output(line)


def _kill(proc: subprocess.Popen) -> None:
    """Kill the child's whole process group (its DataLoader workers included)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _spawn(job: ChildJob, how: str, no_network: bool, fd: int,
           label_files=()) -> tuple[subprocess.Popen, sandbox.Plan | None]:
    """Start the worker: inside the sandbox ``how`` (from :func:`sandbox.choose`), or bare."""
    jobfile = Path(job.out_dir) / "job.json"
    jobfile.write_text(json.dumps(asdict(job)))
    cmd = [sys.executable, "-m", "imagenet_hard.score.worker", str(jobfile), str(fd)]
    env, plan = child_env(), None
    if how == "none":
        cmd = [*(network_prefix() if no_network else []), *cmd]
    else:
        read_only, writable = job.mounts()
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
              sandbox_tool: str = "auto", label_files=()) -> ChildReport:
    """Run one job in a sandboxed child process (``sandbox_tool``: see :data:`sandbox.TOOLS`);
    return its report or raise :class:`SubmissionError`. Every process the child started is
    gone when this returns. ``label_files``: the scored data's labelled files, which the sandbox
    refuses to show (:func:`sandbox.check_no_labels`)."""
    how = sandbox.choose(sandbox_tool, no_network)
    rfd, wfd = os.pipe()
    try:
        proc, plan = _spawn(job, how, no_network, wfd, label_files)
    finally:
        os.close(wfd)
    w = _Watch(job, timeout, load_timeout)
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
    _raise_for(proc, w, name)
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
            # The child is gone; a forked DataLoader worker may still hold the pipe open.
            while select.select([rfd], [], [], 0)[0] and (data := os.read(rfd, 1 << 16)):
                w.feed(data, on_progress)
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


def _raise_for(proc: subprocess.Popen, w: _Watch, name: str) -> None:
    if w.error:
        e = w.error
        where = f" on rows {e['rows'][0]}–{e['rows'][1]}" if e.get("rows") else ""
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
            raise SubmissionError(_memory_message(name, where, w.job.memory_limit, e["message"]))
        body = e["traceback"].rstrip() if e.get("traceback") else e["message"]
        if "Read-only file system" in body:
            body += ("\n(The sandbox is read-only apart from /tmp and the output folder; weight "
                     "caches are mounted read-only: download weights before scoring.)")
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


def _memory_message(name: str, where: str, limit: int | None, detail: str) -> str:
    if limit is None:
        return f"{name} ran out of memory{where} ({detail}) with no --memory-limit set."
    return (f"{name} ran out of memory{where}: it may use {sandbox.format_size(limit)} "
            f"(--memory-limit), so raise it (to --memory-limit "
            f"{max(2, round(2 * limit / 1024 ** 3))}G) or lower --batch-size ({detail}).")


def new_scratch_dir(prefix: str = "imhard-score-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
