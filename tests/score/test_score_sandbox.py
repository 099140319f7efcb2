"""The scoring sandbox: a hostile submission reads no secret (the harness's /proc environ, every
/proc/*/environ, the Hub token file) and no label, writes nothing outside its scratch, leaves no
process behind (a double-forked new-session grandchild included) whether it finishes or times
out, and fails with one sentence when it exceeds the memory limit. Each sandbox tool available
here is tried; ``--sandbox none`` shows the same probe does find the secrets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from scoring_data import MODEL_FORM, PREDICT_FORM, make_dataset, sandbox_tools, write_submission

from imagenet_hard import sandbox as sb
from imagenet_hard.cli import main
from imagenet_hard.errors import SandboxError, SubmissionError
from imagenet_hard.score import RunOptions, score

HOSTILE = '''
import glob, os, re, sys, time

def grab(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except OSError:
        return ""

loot = [grab(f"/proc/{os.getppid()}/environ"), grab(os.path.expanduser("~/.cache/huggingface/token"))]
loot += [grab(p) for p in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline")]
loot += [grab(p) for p in TOKEN_FILES]
print("PROCS", len(glob.glob("/proc/[0-9]*")))

import json, pyarrow as pa      # the job file names the Arrow files: do they hold the labels?
args = open("/proc/self/cmdline", "rb").read().split(b"\\0")
job = json.load(open(next(a for a in args if a.endswith(b"job.json")).decode()))
columns = set()
for path in [f for seg in job["segments"] for f in seg["arrow_files"]]:
    with pa.memory_map(path) as source:
        columns |= set(pa.ipc.open_stream(source).schema.names)
print("COLUMNS", sorted(columns))
# The harness cuts output lines at 4 KiB: print each token found, not all the loot.
print("LOOT", len(loot))
for token in sorted(set(re.findall(r"hf_[A-Z]+[0-9a-f]{32}", "".join(loot)))):
    print("LOOT", token)
try:
    with open(ESCAPE, "w") as f:
        f.write("written from the sandbox")
except OSError as exc:
    print("WRITE", exc)

if os.fork() == 0:              # a grandchild in a new session: out of the harness's group
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", MARKER])
    os._exit(0)
os.wait()
'''

HANG = '''
_inner = load

class Hang:
    def predict(self, images):
        time.sleep(120)

def load(device):
    return Hang() if os.environ.get("IMHARD_TEST_HANG") else _inner(device)
'''


def _alive(marker: str) -> list[int]:
    """PIDs whose command line holds ``marker``."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            pass
    return [p for p in pids if p != os.getpid()]


@pytest.fixture
def hostile(tmp_path, isolated_home):
    """A hostile submission, a fake HOME and HF_HOME holding token files, secrets for the harness."""
    fake_home = tmp_path / "fakehome"
    hf_home = Path(os.environ["HF_HOME"])
    secrets = {"env": f"hf_ENV{uuid.uuid4().hex}", "home": f"hf_HOME{uuid.uuid4().hex}",
               "hf_home": f"hf_HFHOME{uuid.uuid4().hex}"}
    tokens = [fake_home / ".cache" / "huggingface" / "token", hf_home / "token"]
    for path, value in zip(tokens, (secrets["home"], secrets["hf_home"]), strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    marker = f"{900 + uuid.uuid4().int % 10**6 / 10**6:.6f}"   # `sleep 900.123456`
    escape = tmp_path / "escaped.txt"
    body = (f"TOKEN_FILES = {[str(t) for t in tokens]!r}\nMARKER = {marker!r}\n"
            f"ESCAPE = {str(escape)!r}\n" + HOSTILE + PREDICT_FORM + HANG)
    sub = write_submission(tmp_path, body)
    env = {**os.environ, "HOME": str(fake_home), "HF_TOKEN": secrets["env"], "PYTHONUNBUFFERED": "1"}
    yield dict(sub=sub, data=make_dataset(tmp_path / "ds"), env=env, secrets=secrets,
               marker=marker, escape=escape)
    for pid in _alive(marker):  # only the unconfined control run leaves one
        os.kill(pid, signal.SIGKILL)


def _score_cli(h, *args) -> subprocess.CompletedProcess:
    """``imhard score`` as its own process, so HF_TOKEN is in the harness's /proc/PID/environ."""
    return subprocess.run([sys.executable, "-m", "imagenet_hard", "score", str(h["sub"]),
                           "--dataset", str(h["data"]), "--limit", "2", *args],
                          env=h["env"], capture_output=True, text=True, timeout=600)


def _assert_confined(out: str, h: dict) -> None:
    assert "LOOT" in out and "PROCS" in out, out
    for name, secret in h["secrets"].items():
        assert secret not in out, f"the submission read the {name} secret"
    procs = int(next(line for line in out.splitlines() if "PROCS" in line).split()[-1])
    assert procs <= 4, out          # the sandbox's init and the worker (+ its fork)
    assert "COLUMNS ['image']" in out, out   # no labels in what the child can open
    assert not h["escape"].exists()          # /tmp inside is a scratch, thrown away
    time.sleep(0.5)
    assert _alive(h["marker"]) == [], "a process of the submission outlived the run"


@pytest.mark.parametrize("tool", sandbox_tools())
def test_hostile_submission_finds_no_secret_and_leaves_no_process(hostile, tool):
    res = _score_cli(hostile, "--sandbox", tool)
    assert res.returncode == 0, res.stdout + res.stderr
    _assert_confined(res.stdout + res.stderr, hostile)


@pytest.mark.parametrize("tool", sandbox_tools())
def test_timed_out_submission_leaves_no_process(hostile, tool, monkeypatch):
    monkeypatch.setenv("IMHARD_TEST_HANG", "1")
    monkeypatch.setenv("HOME", hostile["env"]["HOME"])
    lines: list[str] = []
    with pytest.raises(SubmissionError, match="the batch at rows 0–1 exceeded --timeout 2 s"):
        score(hostile["sub"], dataset=hostile["data"], limit=2,
              options=RunOptions(timeout=2, sandbox=tool, on_output=lines.append))
    _assert_confined("\n".join(lines), hostile)


def test_unconfined_run_shows_what_the_sandbox_prevents(hostile):
    """The control: with --sandbox none the same probe reads every secret and its grandchild
    survives, so the assertions above can fail."""
    res = _score_cli(hostile, "--sandbox", "none")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert all(secret in out for secret in hostile["secrets"].values())
    assert hostile["escape"].exists()
    assert _alive(hostile["marker"])


@pytest.mark.parametrize("tool", sandbox_tools())
def test_memory_limit_fails_with_one_sentence(tmp_path, tool):
    sub = write_submission(tmp_path, PREDICT_FORM + '''
_inner = load

def load(device):
    hog = np.ones(6 * 1024 ** 3, dtype=np.uint8)   # 6 GiB, over the 3 GiB limit
    return _inner(device)
''')
    res = CliRunner().invoke(main, ["score", str(sub), "--dataset", str(make_dataset(tmp_path / "ds")),
                                    "--memory-limit", "3G", "--sandbox", tool, "--quiet"])
    assert res.exit_code == 1, res.output
    error = res.output.strip().splitlines()[-1]
    assert error.startswith("Error: submission.py ran out of memory while loading the model: it "
                            "may use 3 GiB (--memory-limit), so raise it (to --memory-limit 6G"), error
    assert "Traceback" not in res.output and error.count(". ") == 0


@pytest.mark.parametrize("tool", sandbox_tools())
def test_torch_model_runs_under_a_memory_limit(tmp_path, tool):
    data = make_dataset(tmp_path / "ds")
    sub = write_submission(tmp_path, MODEL_FORM)
    run = score(sub, dataset=data, options=RunOptions(batch_size=4, workers=1, sandbox=tool,
                                                      memory_limit=sb.parse_memory_limit("4G")))
    assert run.result.metrics["n"] == 8 and run.result.metrics["correct"] == 4


@pytest.mark.parametrize("tool", sandbox_tools())
def test_tmp_on_the_import_path_leaves_the_child_its_scratch(tmp_path, tool, monkeypatch):
    """`python /tmp/script.py` puts /tmp on the harness's import path; bound read-only over the
    child's scratch /tmp, it left the child no place for temporary files (torch's own import
    asks for one) and showed it every other file in /tmp."""
    monkeypatch.syspath_prepend("/tmp")
    data = make_dataset(tmp_path / "ds")
    sub = write_submission(tmp_path, MODEL_FORM + "\nimport tempfile\n"
                           "with tempfile.TemporaryFile() as _f:\n    _f.write(b'scratch')\n")
    run = score(sub, dataset=data, options=RunOptions(batch_size=8, workers=0, sandbox=tool))
    assert run.result.metrics["n"] == 8 and run.result.metrics["correct"] == 4


def test_no_working_tool_is_one_sentence_before_any_data_is_read(tmp_path, monkeypatch):
    sub = write_submission(tmp_path, PREDICT_FORM)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    sb._working.cache_clear()
    try:
        res = CliRunner().invoke(main, ["score", str(sub), "--dataset", str(tmp_path / "missing")])
        with pytest.raises(SandboxError, match="bwrap: `bwrap` is not installed"):
            sb.choose("bwrap")
    finally:
        sb._working.cache_clear()
    assert res.exit_code == 1
    assert "no sandbox for the submission" in res.output
    assert "apt-get install bubblewrap" in res.output and "--sandbox none" in res.output
    assert "missing" not in res.output      # refused before the dataset was looked at


def test_a_bind_that_would_expose_the_token_is_refused(tmp_path):
    hf_home = Path(os.environ["HF_HOME"])
    (hf_home / "token").parent.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text("hf_x")
    with pytest.raises(SandboxError, match="would expose .*token"):
        sb.make_plan([str(hf_home)], [], {})


def test_memory_sizes_parse_and_bad_ones_are_refused_early(tmp_path):
    assert sb.parse_memory_limit("4G") == 4 * 1024 ** 3
    assert sb.parse_memory_limit("512M") == 512 * 1024 ** 2
    assert sb.parse_memory_limit("1.5GiB") == 3 * 1024 ** 3 // 2
    assert sb.parse_memory_limit("none") is None
    assert sb.default_memory_limit() > 0
    res = CliRunner().invoke(main, ["score", str(tmp_path / "x.py"), "--memory-limit", "lots"])
    assert res.exit_code == 2 and "expected a size such as 8G" in res.output
