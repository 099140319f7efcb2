"""The worker with the real scorer: submit → host run → a verified board row; the token never
reaches a submission; a worker killed mid-request is finished by the next, resuming from the
batch cache, nothing predicted twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scoring_data import PREDICT_FORM, make_dataset, write_submission

from imagenet_hard.cli import main
from imagenet_hard.host import FolderQueue, host_run, status_table
from imagenet_hard.host.requests import FAILED, FINISHED, BoardSettings
from imagenet_hard.host.submit import submit
from imagenet_hard.score import RunOptions

TOKEN = "hf_boardWRITEtoken0123456789"

#: Answers class 999 for every image when it can see the token anywhere it might look, else 0.
SNOOP = '''
import os, glob
import numpy as np
METADATA = {"name": "Snoop"}

def _found():
    token = "hf_boardWRITEtoken0123456789"
    if any(token in v for v in os.environ.values()):
        return True
    paths = [os.environ.get("HF_TOKEN_PATH") or "", os.path.expanduser("~/.cache/huggingface/token")]
    paths += glob.glob("/proc/*/environ")
    for p in paths:
        try:
            with open(p, "rb") as f:
                if token.encode() in f.read():
                    return True
        except OSError:
            pass
    return False

class Snoop:
    def predict(self, images):
        out = np.zeros((len(images), 1000), dtype=np.float32)
        out[:, 999 if _found() else 0] = 1.0
        return out

def load(device):
    return Snoop()
'''

#: One image a second, saying so on stdout: slow enough to be killed in the middle.
SLOW = PREDICT_FORM.replace("    def predict(self, images):\n",
                            "    def predict(self, images):\n"
                            "        import time; time.sleep(1.0); print('predicting', len(images), flush=True)\n")


@pytest.fixture
def setup(tmp_path, monkeypatch):
    data = make_dataset(tmp_path / "data")
    home = tmp_path / "home"
    monkeypatch.setenv("IMHARD_HOME", str(home))
    queue = FolderQueue(tmp_path / "board")
    queue.ensure()
    return tmp_path, data, home, queue


@pytest.mark.slow
def test_submit_then_run_puts_a_verified_row_on_the_board(setup):
    tmp, data, home, queue = setup
    sub = write_submission(tmp, PREDICT_FORM, "oracle.py")
    filed = submit(sub, str(queue.root), submitter="alice", options=RunOptions(no_network=True))
    assert "filed request" in filed.summary()
    bad = write_submission(tmp, "METADATA = {'name': 1}\n", "broken.py")
    with pytest.raises(Exception, match="METADATA"):
        submit(bad, str(queue.root), options=RunOptions(no_network=True))   # checked here first
    done = host_run(str(queue.root), dataset=str(data), home=str(home), once=True,
                    options=RunOptions(), log=lambda m: None)
    assert [t.status for t in done.turns] == [FINISHED]
    rid = filed.request.id
    result = json.loads((queue.root / "results" / f"{rid}.json").read_text())
    assert result["metadata"]["name"] == "Controlled"
    page = (queue.root / "index.html").read_text()
    assert 'class="badge verified">verified' in page and f'id="req-{rid}"' in page
    assert FINISHED in status_table(queue)
    again = submit(sub, str(queue.root), submitter="alice", check=False)
    assert again.duplicate is not None and str(queue.root / "results") in again.summary()


@pytest.mark.slow
def test_the_token_never_reaches_a_submission(setup, monkeypatch):
    tmp, data, home, queue = setup
    sub = write_submission(tmp, SNOOP, "snoop.py")
    submit(sub, str(queue.root), submitter="mallory", check=False)
    (home / ".cache" / "huggingface").mkdir(parents=True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    res = CliRunner().invoke(main, ["host", "run", "--board", str(queue.root), "--once",
                                    "--dataset", str(data), "--home", str(home)])
    assert res.exit_code == 0, res.output
    assert TOKEN not in res.output and "HF_TOKEN" not in os.environ
    (result,) = (queue.root / "results").glob("*.predictions.parquet")
    top1 = {row[0] for row in pq.read_table(result).column("top5").to_pylist()}
    assert top1 == {0}                                    # it looked, and found nothing


@pytest.mark.slow
def test_a_killed_worker_is_finished_by_the_next_from_the_cache(setup):
    tmp, data, home, queue = setup
    queue.save_settings(BoardSettings(lease_seconds=3.0))
    sub = write_submission(tmp, SLOW, "slow.py")
    filed = submit(sub, str(queue.root), submitter="alice", check=False)
    env = {**os.environ, "IMHARD_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    worker = subprocess.Popen([sys.executable, "-m", "imagenet_hard", "host", "run", "--board",
                               str(queue.root), "--once", "--dataset", str(data),
                               "--batch-size", "1"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    parts = home / "scores" / "cache"
    deadline = time.monotonic() + 180
    while len(list(parts.glob("*/parts/part-*"))) < 2:
        assert worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    time.sleep(1.0)                   # the sandboxed child dies with its parent
    before = len(list(parts.glob("*/parts/part-*")))
    assert 2 <= before < 8
    (entry,), _ = queue.snapshot()
    assert entry.state.status == "RUNNING"                # until its lease runs out
    time.sleep(3.5)
    printed = []
    done = host_run(str(queue.root), dataset=str(data), home=str(home), once=True,
                    options=RunOptions(batch_size=1, on_output=printed.append),
                    log=lambda m: None)
    assert [t.status for t in done.turns] == [FINISHED]
    assert sum("predicting" in line for line in printed) == 8 - before    # only the rest
    (entry,), _ = queue.snapshot()
    assert entry.state.attempts == 2 and entry.request.id == filed.request.id
    table = pq.read_table(queue.root / "results" / f"{filed.request.id}.predictions.parquet")
    ids = table.column("id").to_pylist()
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 8             # each row once


@pytest.mark.slow
def test_a_submission_that_fails_is_failed_with_one_line(setup):
    tmp, data, home, queue = setup
    sub = write_submission(tmp, "import not_a_module_anywhere\n", "broken.py")
    submit(sub, str(queue.root), submitter="bob", check=False)
    done = host_run(str(queue.root), dataset=str(data), home=str(home), once=True,
                    options=RunOptions(), log=lambda m: None)
    (turn,) = done.turns
    assert turn.status == FAILED and "not_a_module_anywhere" in turn.detail
    (entry,), _ = queue.snapshot()
    assert "\n" not in entry.state.reason and len(entry.state.reason) <= 300
