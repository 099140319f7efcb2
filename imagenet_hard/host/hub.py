"""The Hub queue: a dataset repo holding ``settings.json``, ``requests/<id>.json``,
``files/<sha256>.py`` and the worker's ``state/<id>.json``, as the Hugging Face leaderboards keep
their requests dataset.

A state change is a compare-and-set: read the repo's head commit and the request's state there;
if the state is still the version the caller read (its SHA-256, or absent), commit the new one with
``create_commit(parent_commit=head)``. The Hub refuses a commit whose parent is no longer the head
(HTTP 412; 409 is read the same way), so of two workers claiming at once one commit lands and the
other re-reads: if the request's own state did not change (someone filed another request), it
tries again on the new head, else it lost. Every call goes through one ``HfApi`` built with an
``endpoint`` (``HF_ENDPOINT`` by default), so tests run it against a loopback fake.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ..errors import ImHardError, InvalidValueError
from ..files import sha256_bytes
from .queue import MAX_SETTINGS_BYTES, Queue
from .requests import (
    ID_RE,
    MAX_RECORD_BYTES,
    BoardSettings,
    Entry,
    Refused,
    Request,
    State,
    one_line,
)

HUB_REPO = re.compile(r"[A-Za-z0-9][\w.\-]{0,95}/[A-Za-z0-9][\w.\-]{0,95}")
ABSENT = "absent"
CONFLICT = (409, 412)


class HubQueue(Queue):
    def __init__(self, repo: str, token: str | None = None, endpoint: str | None = None,
                 tries: int = 10):
        from huggingface_hub import HfApi

        if not HUB_REPO.fullmatch(repo):
            raise InvalidValueError(f"board {repo!r} must be a Hub dataset OWNER/NAME or a folder")
        self.repo, self.name, self.tries = repo, f"hub:{repo}", tries
        self.endpoint = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        self.api = HfApi(endpoint=self.endpoint, token=token)
        self._cache = tempfile.TemporaryDirectory(prefix="imhard-hub-queue-")

    # --- reading -------------------------------------------------------------------------------

    def _head(self) -> tuple[str, set[str]]:
        try:
            info = self.api.dataset_info(self.repo)
        except Exception as exc:  # HTTP, auth, offline: one line, never a token
            raise self._error("reading", exc) from exc
        return info.sha, {s.rfilename for s in (info.siblings or [])}

    def _read(self, path: str, revision: str, limit: int) -> bytes | None:
        try:
            local = self.api.hf_hub_download(self.repo, path, repo_type="dataset",
                                             revision=revision, cache_dir=self._cache.name)
        except Exception as exc:
            raise self._error(f"reading {path} from", exc) from exc
        if os.path.getsize(local) > limit:
            return None
        return Path(local).read_bytes()

    def settings(self) -> BoardSettings:
        head, files = self._head()
        data = self._read("settings.json", head, MAX_SETTINGS_BYTES) if "settings.json" in files else None
        return BoardSettings.parse(data)

    def snapshot(self) -> tuple[list[Entry], list[Refused]]:
        head, files = self._head()
        entries, refused = [], []
        for path in sorted(f for f in files if f.startswith("requests/") and f.endswith(".json")):
            rid = path[len("requests/"):-len(".json")]
            try:
                if not ID_RE.fullmatch(rid):
                    raise InvalidValueError("request refused: its file name is not a request id")
                data = self._read(path, head, MAX_RECORD_BYTES)
                if data is None:
                    raise InvalidValueError(f"request refused: its record is over "
                                            f"{MAX_RECORD_BYTES} bytes")
                req = Request.parse(data, rid)
            except InvalidValueError as exc:
                refused.append(Refused(one_line(rid, 60), one_line(str(exc))))
                continue
            version, state = self._state(rid, head, files)
            entries.append(Entry(req, state, version))
        entries.sort(key=lambda e: (e.request.created, e.request.id))
        return entries, refused

    def _state(self, rid: str, head: str, files: set[str]) -> tuple[str, State]:
        path = f"state/{rid}.json"
        if path not in files:
            return ABSENT, State()
        data = self._read(path, head, MAX_RECORD_BYTES)
        if data is None:
            raise InvalidValueError(f"{path} in {self.repo} is not a state record; delete it")
        return sha256_bytes(data), State.parse(data)

    def read_file(self, request: Request, limit: int) -> bytes | None:
        head, files = self._head()
        path = f"files/{request.sha256}.py"
        return self._read(path, head, limit) if path in files else None

    # --- writing -------------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the queue's dataset repo (private) when it does not exist: the worker's job."""
        try:
            self.api.create_repo(self.repo, repo_type="dataset", private=True, exist_ok=True)
        except Exception as exc:
            raise self._error("creating", exc) from exc

    def _commit(self, files: dict[str, bytes], message: str, parent: str | None = None):
        from huggingface_hub import CommitOperationAdd

        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=b) for p, b in files.items()]
        return self.api.create_commit(self.repo, ops, commit_message=message,
                                      repo_type="dataset", parent_commit=parent)

    def save_settings(self, settings: BoardSettings) -> None:
        try:
            self._commit({"settings.json": settings.to_json()}, "Board settings")
        except Exception as exc:
            raise self._error("writing the settings of", exc) from exc

    def file(self, request: Request, data: bytes) -> None:
        try:
            self._commit({f"files/{request.sha256}.py": data,
                          f"requests/{request.id}.json": request.to_json()},
                         f"Request {request.id} by {request.submitter}")
        except Exception as exc:
            raise self._error("filing the request in", exc) from exc

    def put_state(self, request_id: str, version: str, state: State) -> str | None:
        data = state.to_json()
        for _ in range(self.tries):
            head, files = self._head()
            now, _ = self._state(request_id, head, files)
            if now != version:
                return None
            try:
                self._commit({f"state/{request_id}.json": data},
                             f"{state.status} {request_id}", parent=head)
            except Exception as exc:
                if _status(exc) in CONFLICT:
                    continue            # someone committed first: re-read, maybe try again
                raise self._error("writing the state of a request in", exc) from exc
            return sha256_bytes(data)
        return None

    def upload_board(self, folder: Path) -> str:
        """Upload the built board (pages, results, comparisons) under ``board/``; its URL."""
        try:
            self.api.upload_folder(folder_path=str(folder), path_in_repo="board",
                                   repo_id=self.repo, repo_type="dataset",
                                   commit_message="Rebuild the board",
                                   allow_patterns=["*.html", "*.md", "results/*", "compare/*"])
        except Exception as exc:
            raise self._error("uploading the board to", exc) from exc
        return self.url("board/index.html")

    def fetch_results(self, results: Path, limit: int = 1 << 30) -> int:
        """Copy the board's results (``board/results/*``) missing from ``results``, so a worker
        on a fresh machine rebuilds the whole board, not its own rows only; how many it copied.
        The board re-checks every result against its predictions when it is built."""
        head, files = self._head()
        results.mkdir(parents=True, exist_ok=True)
        copied = 0
        for path in sorted(f for f in files if f.startswith("board/results/")):
            name = path[len("board/results/"):]
            if "/" in name or name.startswith(".") or (results / name).exists():
                continue
            data = self._read(path, head, limit)
            if data is not None:
                (results / name).write_bytes(data)
                copied += 1
        return copied

    def url(self, path: str) -> str:
        return f"{self.endpoint}/datasets/{self.repo}/blob/main/{path}"

    def _error(self, what: str, exc: Exception) -> ImHardError:
        token = getattr(self.api, "token", None)
        msg = str(exc).splitlines()[0] if str(exc) else ""
        if isinstance(token, str) and token:
            msg = msg.replace(token, "***")
        return ImHardError(f"{what} Hub board {self.repo} failed: {type(exc).__name__}: "
                           f"{one_line(msg, 200)}. Check the repo exists and the token may "
                           "write it (HF_TOKEN or `hf auth login`)")


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)
