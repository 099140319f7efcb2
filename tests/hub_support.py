"""A loopback Hugging Face Hub with commits, branches and tags, for push and load tests.

Enough of the Hub's HTTP API for ``HfApi`` (create_repo, list_repo_refs, create_branch,
create_tag, upload_folder), ``snapshot_download`` and ``datasets.load_dataset(repo,
revision=...)``: every commit keeps its whole file set, so any branch, tag or commit id resolves
to the files it had. Served on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


class HubState:
    def __init__(self):
        self.lock = threading.Lock()
        self.commits: dict[str, dict[str, bytes]] = {}
        self.branches: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.created = None
        self.main = self.commit({}, None)

    def commit(self, files: dict[str, bytes], branch: str | None) -> str:
        oid = hashlib.sha1(f"{len(self.commits)}".encode()).hexdigest()
        self.commits[oid] = dict(files)
        if branch:
            self.branches[branch] = oid
        return oid

    @property
    def main(self) -> str:
        return self.branches["main"]

    @main.setter
    def main(self, oid: str) -> None:
        self.branches["main"] = oid

    def resolve(self, rev: str) -> str | None:
        rev = unquote(rev)
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        return rev if rev in self.commits else None

    def files(self, rev: str) -> dict[str, bytes]:
        oid = self.resolve(rev)
        return self.commits[oid] if oid else {}


def _entry(path: str, data: bytes) -> dict:
    return {"type": "file", "path": path, "size": len(data),
            "oid": hashlib.sha1(data).hexdigest()}


def _listing(files: dict[str, bytes], under: str, recursive: bool) -> list[dict]:
    prefix = under.strip("/") + "/" if under.strip("/") else ""
    out, dirs = [], set()
    for path, data in sorted(files.items()):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):]
        parts = rest.split("/")
        for i in range(1, len(parts)):
            d = prefix + "/".join(parts[:i])
            if (recursive or i == 1) and d not in dirs:
                dirs.add(d)
                out.append({"type": "directory", "path": d, "oid": "0" * 40})
        if recursive or len(parts) == 1:
            out.append(_entry(path, data))
    return out


class FakeHubHandler(BaseHTTPRequestHandler):
    state: HubState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, ctype="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj, headers=None):
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _missing(self, what: str, code="EntryNotFound"):
        self._json(404, {"error": what}, headers={"X-Error-Code": code})

    def _route(self):
        st = self.state
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        base = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        with st.lock:
            st.calls.append((self.command, url.path))
            if parts[:3] == ["api", "repos", "create"]:
                st.created = json.loads(body)
                return self._json(200, {"url": f"{base}/datasets/{st.created['organization']}/"
                                                f"{st.created['name']}"})
            if parts[:2] == ["api", "validate-yaml"]:
                return self._json(200, {"warnings": []})
            if parts[:2] == ["api", "datasets"] and len(parts) >= 4:
                return self._api(parts[2] + "/" + parts[3], parts[4:], query, body, base)
            if parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve":
                return self._resolve(parts[4], "/".join(parts[5:]))
        return self._missing(f"fake hub has no {url.path}", "RepoNotFound")

    def _api(self, repo: str, rest: list[str], query, body: bytes, base: str):
        st = self.state
        kind = rest[0] if rest else "revision"
        rev = rest[1] if len(rest) > 1 else "main"
        if kind == "refs":
            ref = lambda n, o, k: {"name": n, "ref": f"refs/{k}/{n}", "targetCommit": o}  # noqa: E731
            return self._json(200, {"branches": [ref(n, o, "heads") for n, o in st.branches.items()],
                                    "tags": [ref(n, o, "tags") for n, o in st.tags.items()],
                                    "converts": []})
        if kind == "branch":
            st.branches.setdefault(rev, st.main)
            return self._json(200, {})
        if kind == "tag":
            name = json.loads(body)["tag"]
            if name in st.tags:
                return self._json(409, {"error": f"tag {name} already exists"})
            oid = st.resolve(rev)
            if oid is None:
                return self._missing(f"no revision {rev}", "RevisionNotFound")
            st.tags[name] = oid
            return self._json(200, {})
        if kind == "revision":
            oid = st.resolve(rev)
            if oid is None:
                return self._missing(f"no revision {rev}", "RevisionNotFound")
            return self._json(200, {"id": repo, "sha": oid, "private": False, "tags": [],
                                    "siblings": [{"rfilename": p} for p in sorted(st.commits[oid])],
                                    "lastModified": "2026-12-06T00:00:00.000Z"})
        if kind == "tree":
            if st.resolve(rev) is None:
                return self._missing(f"no revision {rev}", "RevisionNotFound")
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return self._json(200, _listing(st.files(rev), "/".join(rest[2:]), recursive))
        if kind == "paths-info":
            files = st.files(rev)
            paths = parse_qs(body.decode()).get("paths", []) if body and not body.startswith(b"{") \
                else json.loads(body or b"{}").get("paths", [])
            out = []
            for p in paths:
                if p in files:
                    out.append(_entry(p, files[p]))
                elif any(f.startswith(p.rstrip("/") + "/") for f in files):
                    out.append({"type": "directory", "path": p, "oid": "0" * 40})
            return self._json(200, out)
        if kind == "preupload":
            files = json.loads(body)["files"]
            return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                               "shouldIgnore": False} for f in files]})
        if kind == "commit":
            files = dict(st.files(rev))
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    files.pop(item["value"]["path"], None)
            oid = st.commit(files, unquote(rev))
            return self._json(200, {"commitUrl": f"{base}/datasets/{repo}/commit/{oid}",
                                    "commitOid": oid})
        return self._missing(f"fake hub has no {kind}", "RepoNotFound")

    def _resolve(self, rev: str, path: str):
        st = self.state
        oid = st.resolve(rev)
        if oid is None:
            return self._missing(f"no revision {rev}", "RevisionNotFound")
        data = st.commits[oid].get(path)
        if data is None:
            return self._missing(f"no {path} at {rev}")
        headers = {"X-Repo-Commit": oid, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and self.command == "GET":
            start, _, end = rng[6:].partition("-")
            start = int(start or 0)
            end = min(int(end) if end else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start:end + 1], "application/octet-stream", headers)
        return self._send(200, data, "application/octet-stream", headers)

    def do_GET(self):
        self._route()

    def do_HEAD(self):
        self._route()

    def do_POST(self):
        self._route()


class FakeHub:
    """``with FakeHub() as hub``: ``hub.url`` serves ``hub.state``."""

    def __init__(self):
        self.state = HubState()
        handler = type("Hub", (FakeHubHandler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
