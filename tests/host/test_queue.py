"""The folder queue: compare-and-set, claims, leases, limits, duplicates and hostile requests
(no scoring here: the scorer is a function the test controls)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from imagenet_hard.errors import InvalidValueError
from imagenet_hard.files import sha256_bytes
from imagenet_hard.host import queue as q
from imagenet_hard.host.pages import queue_html
from imagenet_hard.host.requests import (
    FAILED,
    FINISHED,
    PENDING,
    RUNNING,
    BoardSettings,
    Request,
    State,
    iso,
    new_id,
    utc_now,
)
from imagenet_hard.host.submit import submit
from imagenet_hard.host.worker import process, run_worker

SOURCE = b"METADATA = {'name': 'x'}\ndef load(device):\n    return None\n"


def file_request(queue, data=SOURCE, submitter="alice", name="model.py", **kw) -> Request:
    sha = sha256_bytes(data)
    req = Request(id=new_id(sha), sha256=sha, file_name=name, submitter=submitter,
                  created=iso(utc_now()), size=len(data), **kw)
    queue.file(req, data)
    return req


@pytest.fixture
def board(tmp_path):
    queue = q.FolderQueue(tmp_path / "board")
    queue.ensure()
    queue.save_settings(BoardSettings(requests_per_day=100, lease_seconds=60))
    return queue


def test_put_state_is_compare_and_set(board):
    req = file_request(board)
    (entry,), _ = board.snapshot()
    first = board.put_state(req.id, entry.version, State(status=RUNNING, worker="a"))
    assert first is not None
    assert board.put_state(req.id, entry.version, State(status=RUNNING, worker="b")) is None
    (entry,), _ = board.snapshot()
    assert entry.state.worker == "a" and entry.version == first


def test_claim_takes_the_oldest_and_an_expired_lease_returns_it(board):
    reqs = [file_request(board, data=SOURCE + f"# {k}\n".encode()) for k in range(3)]
    got = q.claim(board, "w1")
    assert got.request.id == min(r.id for r in reqs) and got.state.status == RUNNING
    assert q.claim(board, "w2").request.id != got.request.id
    # the first worker dies: once its lease has run out the request is pending again
    later = time.time() + 120
    (e,) = [e for e in board.snapshot()[0] if e.request.id == got.request.id]
    assert e.status(time.time()) == RUNNING and e.status(later) == PENDING
    again = q.claim(board, "w3", now=later)
    assert again.request.id == got.request.id and again.state.attempts == 2
    assert q.renew(board, got, 60) is None               # the dead worker's lease is gone
    assert q.finish(board, got, "x") is None             # and it can write nothing


def test_submit_refuses_past_the_daily_limit_and_oversized_files(board, tmp_path):
    board.save_settings(BoardSettings(requests_per_day=2, max_file_bytes=200))
    for k in range(2):
        f = tmp_path / f"m{k}.py"
        f.write_bytes(SOURCE + f"# {k}\n".encode())
        submit(f, str(board.root), submitter="bob", check=False)
    f = tmp_path / "m9.py"
    f.write_bytes(SOURCE + b"# 9\n")
    with pytest.raises(InvalidValueError, match="daily limit"):
        submit(f, str(board.root), submitter="bob", check=False)
    submit(f, str(board.root), submitter="carol", check=False)   # the limit is per submitter
    big = tmp_path / "big.py"
    big.write_bytes(b"#" * 201)
    with pytest.raises(InvalidValueError, match="larger than the board's limit"):
        submit(big, str(board.root), submitter="dave", check=False)


def test_a_duplicate_is_answered_with_the_existing_request(board, tmp_path):
    f = tmp_path / "model.py"
    f.write_bytes(SOURCE)
    first = submit(f, str(board.root), check=False)
    again = submit(f, str(board.root), check=False)
    assert again.duplicate is not None and again.duplicate.request.id == first.request.id
    assert "already requested" in again.summary()
    assert len(board.snapshot()[0]) == 1
    other_mode = submit(f, str(board.root), check=False, tta="zoom-in-mean")
    assert other_mode.duplicate is None                   # another mode is another request


def test_the_worker_answers_a_duplicate_that_slipped_in_with_the_first_result(board):
    a = file_request(board)
    b = file_request(board)                               # the same numbers, filed twice
    calls = []

    def scorer(entry, path):
        calls.append(entry.request.id)
        return "results/first.json"

    first, second = sorted([a.id, b.id])                 # filed in one second: by id
    turns = run_worker(board, scorer, board.root / "work", once=True, log=lambda m: None)
    assert calls == [first] and [t.status for t in turns] == [FINISHED, FINISHED]
    states = {e.request.id: e.state for e in board.snapshot()[0]}
    assert states[second].result == "results/first.json"


# --- hostile requests ----------------------------------------------------------------------------

def test_a_forged_status_in_a_request_is_not_read(board):
    req = file_request(board)
    path = board.inbox / f"{req.id}.json"
    data = json.loads(path.read_bytes())
    data.update(status="FINISHED", result="https://evil.example/", state={"status": FINISHED})
    path.write_text(json.dumps(data))
    (entry,), _ = board.snapshot()
    assert entry.status(time.time()) == PENDING and entry.state.result == ""
    assert q.claim(board, "w").request.id == req.id       # still scored


@pytest.mark.parametrize("field,value,says", [
    ("file_name", "../../etc/passwd.py", "file_name"),
    ("file_name", "a.py/b.py", "file_name"),
    ("file_name", "two.py.txt", "file_name"),
    ("sha256", "../" + "0" * 61, "sha256"),
    ("submitter", "<script>alert(1)</script>", "submitter"),
    ("sets", ["../../x"], "sets"),
    ("id", "../../state/other", "id"),
])
def test_requests_naming_other_paths_or_markup_are_refused(board, field, value, says):
    req = file_request(board)
    path = board.inbox / f"{req.id}.json"
    data = json.loads(path.read_bytes())
    data[field] = value
    path.write_text(json.dumps(data))
    entries, refused = board.snapshot()
    assert entries == [] and len(refused) == 1 and says in refused[0].reason
    assert q.claim(board, "w") is None                    # never run


def test_a_request_whose_stored_file_is_another_fails(board):
    req = file_request(board)
    (board.files / f"{req.sha256}.py").write_bytes(b"import os\nprint(os.environ)\n")
    calls = []
    (turn,) = run_worker(board, lambda e, p: calls.append(1) or "x", board.root / "work",
                         once=True, log=lambda m: None)
    assert calls == [] and turn.status == FAILED and "SHA-256" in turn.detail


def test_an_oversized_stored_file_fails_without_being_read_whole(board):
    board.save_settings(BoardSettings(max_file_bytes=100))
    req = file_request(board, data=b"#" * 50)
    (board.files / f"{req.sha256}.py").write_bytes(b"#" * 10_000)
    (turn,) = run_worker(board, lambda e, p: "x", board.root / "work", once=True,
                         log=lambda m: None)
    assert turn.status == FAILED and "100 bytes" in turn.detail


def test_a_link_in_place_of_the_file_is_not_followed(board, tmp_path):
    secret = tmp_path / "secret.py"
    secret.write_bytes(SOURCE)
    req = file_request(board)
    (board.files / f"{req.sha256}.py").unlink()
    os.symlink(secret, board.files / f"{req.sha256}.py")
    (turn,) = run_worker(board, lambda e, p: "x", board.root / "work", once=True,
                         log=lambda m: None)
    assert turn.status == FAILED and "missing" in turn.detail


def test_the_worker_enforces_the_daily_limit_on_requests_written_directly(board):
    board.save_settings(BoardSettings(requests_per_day=1, lease_seconds=60))
    file_request(board, data=SOURCE + b"# 1\n")
    file_request(board, data=SOURCE + b"# 2\n")
    turns = run_worker(board, lambda e, p: "ok", board.root / "work", once=True,
                       log=lambda m: None)
    assert [t.status for t in turns] == [FINISHED, FAILED] and "limit" in turns[1].detail


def test_the_one_py_is_alone_in_its_folder(board):
    file_request(board, name="my_model.py")
    seen = []
    run_worker(board, lambda e, p: seen.append(sorted(os.listdir(p.parent))) or "x",
               board.root / "work", once=True, log=lambda m: None)
    assert seen == [["my_model.py"]]


def test_the_page_escapes_what_requests_and_reasons_hold(board):
    req = file_request(board)
    entry = q.claim(board, "w")
    q.fail(board, entry, 'ImportError: <img src=x onerror="alert(1)"> & <script>x()</script>')
    text = queue_html(*board.snapshot())
    assert "<script>" not in text and "<img" not in text
    assert "&lt;script&gt;" in text and req.id in text


def test_a_lost_lease_writes_nothing(board):
    board.save_settings(BoardSettings(lease_seconds=0.3))
    file_request(board)
    entry = q.claim(board, "slow")

    def scorer(e, path):
        time.sleep(0.2)
        q.claim(board, "thief", now=time.time() + 10)      # takes it back meanwhile
        time.sleep(0.3)
        return "should not be written"

    turn = process(board, entry, scorer, board.root / "work", log=lambda m: None)
    assert turn.status == "LOST"
    (e,), _ = board.snapshot()
    assert e.state.worker == "thief" and e.state.result == ""


# --- two workers, two processes ------------------------------------------------------------------

WORKER = textwrap.dedent("""
    import os, sys, time
    from imagenet_hard.host.queue import FolderQueue
    from imagenet_hard.host.worker import run_worker

    board, log = sys.argv[1], sys.argv[2]
    def scorer(entry, path):
        with open(log, "a") as f:             # O_APPEND: whole lines from both processes
            f.write(f"{entry.request.id} {os.getpid()}\\n")
        time.sleep(0.05)
        return "scored"
    run_worker(FolderQueue(board), scorer, __import__("pathlib").Path(board) / f"work-{os.getpid()}",
               once=True, log=lambda m: None)
""")


def test_two_workers_score_each_of_ten_requests_exactly_once(board, tmp_path):
    reqs = [file_request(board, data=SOURCE + f"# {k}\n".encode()) for k in range(10)]
    log = tmp_path / "scored.log"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), str(board.root), str(log)])
             for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    lines = log.read_text().split()
    ids = lines[0::2]
    assert sorted(ids) == sorted(r.id for r in reqs)      # every one, none twice
    entries, _ = board.snapshot()
    assert {e.state.status for e in entries} == {FINISHED}
    assert all(e.state.attempts == 1 for e in entries)
