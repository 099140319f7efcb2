"""The Hub queue against a loopback fake of the Hub endpoints it uses: repo info (head commit,
file list), file reads at a revision, preupload, and commits with a parent commit (HTTP 412 when
the parent is no longer the head, as the Hub answers)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imagenet_hard.files import sha256_bytes
from imagenet_hard.host import queue as q
from imagenet_hard.host.hub import HubQueue
from imagenet_hard.host.requests import (
    FINISHED,
    PENDING,
    RUNNING,
    Request,
    State,
    iso,
    new_id,
    utc_now,
)
from imagenet_hard.host.worker import run_worker

TOKEN = "hf_queueWRITEtoken123"
REPO = "lab/imagenet-hard-requests"


class FakeHub(BaseHTTPRequestHandler):
    state: dict

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body=None, raw: bytes | None = None, headers=None) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self) -> None:
        st = self.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        st["auth"].add(self.headers.get("Authorization"))
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        with st["lock"]:
            head = st["commits"][-1]
            if parts[:3] == ["api", "repos", "create"]:
                st["created"] = json.loads(body)
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                return self._reply(200, {"url": f"{base}/datasets/{REPO}"})
            if parts[:2] == ["api", "datasets"] and len(parts) == 4:
                return self._reply(200, {"id": REPO, "sha": head, "private": False,
                                         "siblings": [{"rfilename": p} for p in st["files"]]})
            if parts[:1] == ["datasets"] and parts[3] == "resolve":
                rev, name = parts[4], "/".join(parts[5:])
                files = st["history"].get(rev)
                if files is None or name not in files:
                    return self._reply(404, {"error": "Entry not found"},
                                       headers={"X-Error-Code": "EntryNotFound"})
                data = files[name]
                return self._reply(200, raw=data, headers={
                    "X-Repo-Commit": rev, "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                    "Content-Type": "application/octet-stream"})
            if len(parts) > 4 and parts[4] == "preupload":
                files = json.loads(body)["files"]
                return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                    "shouldIgnore": False} for f in files]})
            if len(parts) > 4 and parts[4] == "commit":
                lines = [json.loads(x) for x in body.splitlines()]
                header = next(x["value"] for x in lines if x["key"] == "header")
                parent = header.get("parentCommit")
                if parent is not None and parent != head:
                    st["conflicts"] += 1
                    return self._reply(412, {"error": "A commit has happened since. Please "
                                                      "refresh and try again."})
                for x in lines:
                    if x["key"] == "file":
                        st["files"][x["value"]["path"]] = base64.b64decode(x["value"]["content"])
                new = hashlib.sha1(f"{len(st['commits'])}".encode()).hexdigest()
                st["commits"].append(new)
                st["history"][new] = dict(st["files"])
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                return self._reply(200, {"commitUrl": f"{base}/datasets/{REPO}/commit/{new}",
                                         "commitOid": new})
        return self._reply(404, {"error": f"fake hub has no {self.path}"})

    do_GET = do_POST = do_HEAD = _handle


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub.constants

    first = "0" * 40
    state = {"auth": set(), "files": {}, "commits": [first], "history": {first: {}},
             "conflicts": 0, "lock": threading.Lock()}
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Hub", (FakeHub,), {"state": state}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    state["endpoint"] = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def request(data: bytes, submitter="alice") -> Request:
    sha = sha256_bytes(data)
    return Request(id=new_id(sha), sha256=sha, file_name="model.py", submitter=submitter,
                   created=iso(utc_now()), size=len(data))


def test_file_list_and_read_requests_through_the_hub(hub):
    queue = HubQueue(REPO, token=TOKEN, endpoint=hub["endpoint"])
    req = request(b"print(1)\n")
    queue.file(req, b"print(1)\n")
    assert {f"requests/{req.id}.json", f"files/{req.sha256}.py"} <= set(hub["files"])
    (entry,), refused = queue.snapshot()
    assert refused == [] and entry.request == req and entry.status(time.time()) == PENDING
    assert queue.read_file(req, 1000) == b"print(1)\n"
    assert queue.read_file(req, 3) is None                # over the limit: not read
    assert f"Bearer {TOKEN}" in hub["auth"]


def test_a_state_change_is_a_commit_on_the_parent_it_read(hub):
    queue = HubQueue(REPO, token=TOKEN, endpoint=hub["endpoint"])
    req = request(b"a\n")
    queue.file(req, b"a\n")
    (entry,), _ = queue.snapshot()
    first = queue.put_state(req.id, entry.version, State(status=RUNNING, worker="w1"))
    assert first is not None
    # a second worker that read the same version loses, however the head moved since
    assert queue.put_state(req.id, entry.version, State(status=RUNNING, worker="w2")) is None
    other = request(b"b\n")
    queue.file(other, b"b\n")                             # an unrelated commit moves the head
    assert queue.put_state(req.id, first, State(status=FINISHED, result="r")) is not None


def test_a_commit_conflict_is_retried_on_the_new_head(hub, monkeypatch):
    queue = HubQueue(REPO, token=TOKEN, endpoint=hub["endpoint"])
    req = request(b"a\n")
    queue.file(req, b"a\n")
    (entry,), _ = queue.snapshot()
    real = queue._head
    calls = []

    def head_then_someone_commits():
        out = real()
        if not calls:                                      # between our read and our commit
            calls.append(1)
            queue.file(request(b"c\n", "bob"), b"c\n")
        return out

    monkeypatch.setattr(queue, "_head", head_then_someone_commits)
    assert queue.put_state(req.id, entry.version, State(status=RUNNING, worker="w")) is not None
    assert hub["conflicts"] == 1


def test_a_worker_claims_and_finishes_hub_requests(hub, tmp_path):
    queue = HubQueue(REPO, token=TOKEN, endpoint=hub["endpoint"])
    for k in range(3):
        data = f"# {k}\n".encode()
        queue.file(request(data), data)
    seen = []
    turns = run_worker(queue, lambda e, p: seen.append(e.request.id) or "https://x/r.json",
                       tmp_path / "work", once=True, log=lambda m: None)
    assert len(turns) == 3 and len(set(seen)) == 3
    entries, _ = queue.snapshot()
    assert {e.state.status for e in entries} == {FINISHED}
    assert q.claim(queue, "w") is None


def test_the_board_is_uploaded_under_board_in_the_queue_repo(hub, tmp_path):
    queue = HubQueue(REPO, token=TOKEN, endpoint=hub["endpoint"])
    folder = tmp_path / "built"
    (folder / "results").mkdir(parents=True)
    (folder / "index.html").write_text("<html></html>")
    (folder / "results" / "r.json").write_text("{}")
    (folder / "secret.txt").write_text("not a board file")
    url = queue.upload_board(folder)
    assert {"board/index.html", "board/results/r.json"} <= set(hub["files"])
    assert "board/secret.txt" not in hub["files"] and url.endswith("board/index.html")
    fresh = tmp_path / "fresh" / "results"                # a worker on another machine
    assert queue.fetch_results(fresh) == 1 and (fresh / "r.json").read_text() == "{}"
    assert queue.fetch_results(fresh) == 0


def test_the_worker_creates_a_private_queue_repo(hub):
    HubQueue(REPO, token=TOKEN, endpoint=hub["endpoint"]).ensure()
    assert hub["created"]["type"] == "dataset" and hub["created"]["visibility"] == "private"


def test_a_hub_error_names_the_board_and_never_the_token(hub):
    queue = HubQueue("lab/missing", token=TOKEN, endpoint=hub["endpoint"] + "/nowhere")
    with pytest.raises(Exception) as err:
        queue.snapshot()
    assert "lab/missing" in str(err.value) and TOKEN not in str(err.value)
