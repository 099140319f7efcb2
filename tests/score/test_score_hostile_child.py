"""The unsandboxed harness trusts nothing the sandboxed child leaves behind (issue 19, holes 2
and 3): no link, FIFO or directory it plants makes the parent write outside home or hang; its
prediction parts are read as fixed-size raw files, never inflated; its stdout and event pipe are
read with bounded lines and bounded memory; a bad, unknown or forged event, or a ``finished``
with rows missing, ends in one sentence, never a traceback or a partial result.

Scoring runs in this process, so the parent's peak memory is this test's (``VmHWM``, reset
before each measured run through ``/proc/self/clear_refs``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import threading
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet  # noqa: F401  (loaded before any memory is measured)
import pytest
import torch  # noqa: F401  (the result's environment imports it: load it before measuring)
import torchvision  # noqa: F401
from scoring_data import PREDICT_FORM, make_dataset, write_submission

from imagenet_hard.errors import SubmissionError
from imagenet_hard.score import RunOptions, score

#: What the submission learns from its own command line: the event pipe and the job.
CHILD = '''
import json, os, sys

EVENT_FD = int(next(a for a in reversed(sys.argv) if a.isdigit()))
JOB_FILE = next(a for a in sys.argv if a.endswith("job.json"))
OUT = json.load(open(JOB_FILE))["segments"][0]["out_dir"]
ACT = os.environ.get("IMHARD_TEST_ACT", "")
'''

#: With IMHARD_TEST_ACT set: predict the first batch, then plant() and die on the second.
PLANT_THEN_DIE = PREDICT_FORM + '''
_inner = load

def load(device):
    oracle = _inner(device)
    class Once:
        calls = 0
        def predict(self, images):
            self.calls += 1
            if ACT and self.calls == 2:
                plant()
                os._exit(7)
            return oracle.predict(images)
    return Once()
'''

MIB = 1 << 20
BOUND_MIB = 128   # parent growth allowed while a child floods it with 256 MiB


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(key)


@contextlib.contextmanager
def peak_growth():
    """``out["mib"]``: how far this process's peak resident memory rose above its resident
    memory at the start of the block."""
    out: dict = {}
    try:
        Path("/proc/self/clear_refs").write_text("5")   # resets VmHWM to the current RSS
        before = _status_kib("VmRSS")
    except OSError:                                     # older kernel: compare peaks
        before = _status_kib("VmHWM")
    try:
        yield out
    finally:
        out["mib"] = (_status_kib("VmHWM") - before) / 1024


@contextlib.contextmanager
def within(seconds: int):
    """Fail (instead of hanging the test run) when the block takes longer than ``seconds``."""
    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s: the parent hangs")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _one_sentence(exc: BaseException) -> str:
    msg = str(exc)
    assert isinstance(exc, SubmissionError), repr(exc)
    assert "Traceback" not in msg and "\n" not in msg.strip(), msg
    return msg


def _submission(tmp_path: Path, body: str) -> Path:
    return write_submission(tmp_path, CHILD + body)


def _plant_and_rerun(tmp_path, monkeypatch, plant: str, batch_size: int = 2):
    """Run 1: the child predicts one batch, runs ``plant`` in its output folder and dies.
    Returns (submission, dataset, options) for the rerun, which must see what it planted."""
    data = make_dataset(tmp_path / "ds")
    sub = _submission(tmp_path, plant + PLANT_THEN_DIE)
    opts = RunOptions(batch_size=batch_size, workers=0)
    monkeypatch.setenv("IMHARD_TEST_ACT", "1")
    with pytest.raises(SubmissionError, match="exited with status 7"):
        score(sub, dataset=data, options=opts)
    monkeypatch.delenv("IMHARD_TEST_ACT")
    return sub, data, opts


# -- hole 2: the parent's own files live where the child cannot write ---------------------

def test_a_job_file_link_planted_by_the_child_is_never_written_through(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "written-by-the-harness.json"
    plant = f'''
TARGET = {str(target)!r}

def plant():
    for path in (os.path.join(OUT, "job.json"), os.path.join(os.path.dirname(OUT), "job.json"),
                 JOB_FILE):
        try:
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink(TARGET, path)
        except OSError:
            pass
'''
    sub, data, opts = _plant_and_rerun(tmp_path, monkeypatch, plant)
    run = score(sub, dataset=data, options=opts)         # the rerun the error message asks for
    assert not target.exists() and list(outside.iterdir()) == []
    assert run.result.metrics["n"] == 8 and run.result.metrics["correct"] == 4


@pytest.mark.parametrize("kind", ["dir", "link", "fifo"])
def test_a_metadata_file_planted_by_the_child_is_not_the_parents(tmp_path, kind):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "metadata.json"
    target.write_text(json.dumps({"metadata": {"name": "Forged"}, "form": "predict"}))
    data = make_dataset(tmp_path / "ds")
    sub = _submission(tmp_path, f'''
for folder in (OUT, os.path.dirname(OUT)):
    path = os.path.join(folder, "metadata.json")
    try:
        {{"dir": lambda: os.mkdir(path), "fifo": lambda: os.mkfifo(path),
          "link": lambda: os.symlink({str(target)!r}, path)}}[{kind!r}]()
    except OSError:
        pass
''' + PREDICT_FORM)
    opts = RunOptions(batch_size=4, workers=0)
    with within(60):
        first = score(sub, dataset=data, options=opts)
        again = score(sub, dataset=data, options=opts)   # all cached: metadata read back
    for run in (first, again):
        assert run.result.metadata["name"] == "Controlled", run.result.metadata
    assert json.loads(target.read_text())["metadata"] == {"name": "Forged"}   # untouched


def test_a_parts_folder_left_as_a_link_is_refused(tmp_path, isolated_home):
    # An older harness let the child write the whole cache folder, so it may hold a link where
    # the parts folder goes: mounting it writable would hand the child the link's target.
    data = make_dataset(tmp_path / "ds")
    sub = _submission(tmp_path, PREDICT_FORM)
    opts = RunOptions(batch_size=4, workers=0)
    score(sub, dataset=data, limit=2, options=opts)
    (cache,) = (isolated_home / "scores" / "cache").iterdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    parts = cache / "parts"
    if parts.is_dir() and not parts.is_symlink():
        for f in parts.iterdir():
            f.unlink()
        parts.rmdir()
    parts.symlink_to(outside, target_is_directory=True)
    with pytest.raises(SubmissionError) as err:
        score(sub, dataset=data, limit=2, options=opts)
    msg = _one_sentence(err.value)
    assert str(cache) in msg and "delete" in msg
    assert list(outside.iterdir()) == []


# -- hole 3: prediction parts are fixed-size raw files, read as regular files only ---------

def test_a_fifo_named_as_a_part_fails_in_one_sentence_without_hanging(tmp_path, monkeypatch):
    plant = '''
def plant():
    for name in ("part-000000002-2.npz", "part-000000002-2.top5"):
        os.mkfifo(os.path.join(OUT, name))
'''
    sub, data, opts = _plant_and_rerun(tmp_path, monkeypatch, plant)
    with within(30), pytest.raises(SubmissionError) as err:
        score(sub, dataset=data, options=opts)
    msg = _one_sentence(err.value)
    assert "part-000000002-2.top5" in msg and "not a regular file" in msg and "delete" in msg


def _npz_bomb(path: Path, rows: int) -> None:
    """A few hundred KiB of ``.npz`` whose ``idx`` inflates to ``rows`` int64 zeros."""
    import io

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("idx.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<i8", "fortran_order": False, "shape": (rows,)})
            zeros = bytes(MIB)
            for _ in range(rows * 8 // MIB):
                f.write(zeros)
        for name, arr in (("top5", np.zeros((2, 5), np.int64)),
                          ("top5_prob", np.zeros((2, 5), np.float32)),
                          ("seconds", np.float64(1.0))):
            buf = io.BytesIO()
            np.save(buf, arr)
            z.writestr(f"{name}.npy", buf.getvalue())


def test_an_inflating_or_oversized_part_is_refused_with_bounded_memory(
        tmp_path, monkeypatch, isolated_home):
    sub, data, opts = _plant_and_rerun(tmp_path, monkeypatch, "def plant():\n    pass\n")
    folder = next(isolated_home.glob("scores/cache/**/part-*")).parent
    _npz_bomb(folder / "part-000000002-2.npz", 32 * MIB)          # 256 MiB inflated
    with open(folder / "part-000000002-2.top5", "wb") as f:      # 4 GiB, sparse
        f.write(_header(2))
        f.truncate(4 << 30)
    with within(60), peak_growth() as peak, pytest.raises(SubmissionError) as err:
        score(sub, dataset=data, options=opts)
    msg = _one_sentence(err.value)
    assert "part-000000002-2.top5" in msg and "delete" in msg
    assert peak["mib"] < BOUND_MIB, peak


# The part format, written out here independently of the harness: a header (magic, version, k,
# n) then idx int64[n], top5 int64[n, 5], top5_prob float32[n, 5], seconds float64, little-endian.
MAGIC = b"IMHTOP5\0"


def _header(n: int, magic: bytes = MAGIC, version: int = 1, k: int = 5) -> bytes:
    return magic + struct.pack("<IIQ", version, k, n)


def _part(idx, top5=None, prob=None, seconds: float = 0.5, **header) -> bytes:
    n = len(idx)
    top5 = np.tile(np.arange(5), (n, 1)) if top5 is None else np.asarray(top5)
    prob = np.full((n, 5), 0.2) if prob is None else np.asarray(prob)
    return (_header(n, **header) + np.asarray(idx, "<i8").tobytes()
            + top5.astype("<i8").tobytes() + prob.astype("<f4").tobytes()
            + struct.pack("<d", seconds))


BAD_PARTS = {
    "short": ("part-000000002-2.top5", _part([2, 3])[:-1], "bytes"),
    "long": ("part-000000002-2.top5", _part([2, 3]) + b"\0", "bytes"),
    "magic": ("part-000000002-2.top5", _part([2, 3], magic=b"PK\3\4\0\0\0\0"), "header"),
    "version": ("part-000000002-2.top5", _part([2, 3], version=9), "header"),
    "k": ("part-000000002-2.top5", _part([2, 3], k=1000), "header"),
    "n-not-name": ("part-000000002-3.top5", _part([2, 3]), "bytes"),
    "n-not-header": ("part-000000002-2.top5", _header(3) + _part([2, 3])[24:], "header"),
    "first-not-name": ("part-000000004-2.top5", _part([2, 3]), "row 4"),
    "foreign-row": ("part-000000002-2.top5", _part([2, 99]), "rows"),
    "negative-row": ("part-000000002-2.top5", _part([2, -1]), "rows"),
    "duplicate-row": ("part-000000001-2.top5", _part([1, 3]), "repeats rows"),
    "repeated-row": ("part-000000002-2.top5", _part([2, 2]), "repeats rows"),
    "nan-prob": ("part-000000002-2.top5", _part([2, 3], prob=np.full((2, 5), np.nan)), "finite"),
    "bad-class": ("part-000000002-2.top5", _part([2, 3], top5=np.full((2, 5), 5000)), "classes"),
    "bad-seconds": ("part-000000002-2.top5", _part([2, 3], seconds=float("inf")), "finite"),
    "odd-name": ("part-2-two.top5", _part([2, 3]), "name"),
}


@pytest.mark.parametrize("case", list(BAD_PARTS))
def test_a_malformed_part_is_refused_in_one_sentence(tmp_path, case):
    from imagenet_hard.score.harness import read_parts

    cache = tmp_path / "cache"
    parts = cache / "parts"
    parts.mkdir(parents=True)
    (parts / "part-000000000-2.top5").write_bytes(_part([0, 1]))
    rows, _ = read_parts(cache, range(8))
    assert sorted(rows) == [0, 1]
    name, data, needle = BAD_PARTS[case]
    (parts / name).write_bytes(data)
    with pytest.raises(SubmissionError) as err:
        read_parts(cache, range(8))
    msg = _one_sentence(err.value)
    assert name in msg and needle in msg and str(cache) in msg and "delete" in msg


@pytest.mark.parametrize("kind", ["symlink", "dir"])
def test_a_part_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    from imagenet_hard.score.harness import read_parts

    parts = tmp_path / "cache" / "parts"
    parts.mkdir(parents=True)
    real = tmp_path / "elsewhere.top5"
    real.write_bytes(_part([0, 1]))
    name = parts / "part-000000000-2.top5"
    name.symlink_to(real) if kind == "symlink" else name.mkdir()
    with pytest.raises(SubmissionError) as err:
        read_parts(tmp_path / "cache", range(8))
    assert "not a regular file" in _one_sentence(err.value)


def test_old_npz_parts_and_temporary_files_are_ignored(tmp_path):
    from imagenet_hard.score.harness import read_parts

    parts = tmp_path / "cache" / "parts"
    parts.mkdir(parents=True)
    (parts / "part-000000000-2.npz").write_bytes(b"whatever an older harness wrote")
    (parts / ".part-000000002-2.top5.tmp").write_bytes(b"a batch the child never finished")
    (tmp_path / "cache" / "part-000000004-2.npz").write_bytes(b"the old layout")
    assert read_parts(tmp_path / "cache", range(8)) == ({}, 0.0)


# -- hole 3: bounded reads of the child's stdout and event pipe ----------------------------

def test_an_endless_stdout_line_is_cut_and_memory_stays_bounded(tmp_path):
    data = make_dataset(tmp_path / "ds")
    sub = _submission(tmp_path, '''
chunk = b"x" * (1 << 20)
for _ in range(256):
    sys.stdout.buffer.write(chunk)
sys.stdout.buffer.write(b"\\nafter the flood\\n")
sys.stdout.flush()
''' + PREDICT_FORM)
    lines: list[str] = []
    with within(120), peak_growth() as peak:
        run = score(sub, dataset=data, options=RunOptions(batch_size=4, workers=0,
                                                          on_output=lines.append))
    assert run.result.metrics["n"] == 8
    assert peak["mib"] < BOUND_MIB, peak
    assert max(len(line) for line in lines) < 8192
    assert any("bytes cut]" in line for line in lines) and "after the flood" in lines


def test_an_endless_event_line_fails_in_one_sentence_with_bounded_memory(tmp_path):
    data = make_dataset(tmp_path / "ds")
    sub = _submission(tmp_path, '''
chunk = b"x" * (1 << 20)
for _ in range(256):
    os.write(EVENT_FD, chunk)
''' + PREDICT_FORM)
    with within(60), peak_growth() as peak, pytest.raises(SubmissionError) as err:
        score(sub, dataset=data, options=RunOptions(batch_size=4, workers=0))
    msg = _one_sentence(err.value)
    assert "event" in msg and "longer than" in msg
    assert peak["mib"] < BOUND_MIB, peak


EVENTS = {
    "bad-json": (b"{not json\n", "not valid JSON"),
    "deep-json": (b"[" * 200_000 + b"]" * 200_000 + b"\n", "not valid JSON"),
    "not-an-object": (b"[1, 2]\n", "not a JSON object"),
    "unknown": (b'{"event": "pwned"}\n', "unknown event"),
    "finished-early": (b'{"event": "finished"}\n', "finished"),
    "part-missing-fields": (b'{"event": "part"}\n', "part"),
    "part-wrong-types": (b'{"event": "part", "n": "4", "done": 4, "seconds": 1}\n', "part"),
    "part-too-many": (b'{"event": "loaded", "form": "predict", "metadata": {}, "seconds": 0}\n'
                      b'{"event": "part", "n": 100, "done": 100, "seconds": 1}\n', "rows"),
    "loaded-wrong-types": (b'{"event": "loaded", "form": 1, "metadata": "x", "seconds": "y"}\n',
                           "loaded"),
    "error-wrong-types": (b'{"event": "error", "stage": ["x"], "message": 3}\n', "error"),
}


@pytest.mark.parametrize("case", list(EVENTS))
def test_a_bad_or_forged_event_fails_in_one_sentence(tmp_path, case):
    raw, needle = EVENTS[case]
    data = make_dataset(tmp_path / "ds")
    # The forged event comes first; the submission then exits (after `finished`) or goes on
    # as an honest one would, so only the forgery can fail the run.
    sub = _submission(tmp_path, f'''
os.write(EVENT_FD, {raw!r})
if {case!r} == "finished-early":
    os._exit(0)
''' + PREDICT_FORM)
    with within(60), pytest.raises(SubmissionError) as err:
        score(sub, dataset=data, options=RunOptions(batch_size=4, workers=0))
    msg = _one_sentence(err.value)
    assert needle in msg and "submission.py" in msg


def test_finished_with_deleted_parts_is_not_a_result(tmp_path):
    data = make_dataset(tmp_path / "ds")
    # Honest events for every batch, but the first batch's part is gone when it finishes.
    sub = _submission(tmp_path, PREDICT_FORM + '''
_inner = load

def load(device):
    oracle = _inner(device)
    class Eraser:
        calls = 0
        def predict(self, images):
            self.calls += 1
            if self.calls == 2:
                for name in os.listdir(OUT):
                    os.unlink(os.path.join(OUT, name))
            return oracle.predict(images)
    return Eraser()
''')
    with pytest.raises(SubmissionError) as err:
        score(sub, dataset=data, options=RunOptions(batch_size=4, workers=0))
    msg = _one_sentence(err.value)
    assert "rows 0–3" in msg and "no predictions" in msg


def test_forwarding_bounds_lines_total_and_tail_and_drains_to_the_end(monkeypatch):
    from imagenet_hard.score import runner

    monkeypatch.setattr(runner, "FORWARD_BYTES", 64 * 1024)
    rfd, wfd = os.pipe()
    total = 8 * MIB

    def child():
        with os.fdopen(wfd, "wb") as f:
            for k in range(total // 1024):
                f.write(b"y" * 1023 + b"\n" if k % 512 else b"z" * 9000 + b"\n")

    writer = threading.Thread(target=child)
    writer.start()
    tail, lines = runner.collections.deque(maxlen=40), []
    with within(60), os.fdopen(rfd, "rb") as stream:
        runner._forward(stream, tail, lines.append)
    writer.join()
    shown = sum(len(line) for line in lines)
    assert shown < 64 * 1024 + 2 * 4096 + 200, shown
    assert "output not shown" in lines[-1]
    assert len(tail) == 40 and all(len(t) < 4200 for t in tail)
