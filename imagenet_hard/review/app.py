"""The review web page and its JSON API, served by the one process that owns ``review.duckdb``.

Standard-library HTTP (``ThreadingHTTPServer``); every request goes through one
:class:`~imagenet_hard.review.store.ReviewStore`, which serialises access to the DuckDB
connection with its lock. A decision is committed before its response is sent.

Routes: ``GET /`` (the page), ``GET /static/<file>``, ``GET /api/status``,
``GET /api/candidates?verdict=pending&origin=O&limit=N&offset=K&id=ID``, ``GET /api/decisions``,
``GET /api/history?id=ID``, ``POST /api/decisions``, ``POST /api/undo``, ``GET /images/<id>``.
Errors are JSON ``{"error": message}`` with a 4xx status; the server keeps running.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ImHardError, InvalidValueError, MissingFileError, UnknownNameError
from ..files import write_json_atomic
from . import images
from .store import ReviewStore, server_info_path

MAX_BODY = 1 << 20          # 1 MB: a decision is a few hundred bytes
DRAIN_LIMIT = 64 << 20      # read and discard an oversized body up to this, so the client sees 413
DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
STATIC_FILES = {"index.html": "text/html", "review.css": "text/css",
                "review.js": "text/javascript"}
DECISION_FIELDS = ("id", "verdict", "reason", "tags", "note", "reviewer")
UNDO_FIELDS = ("id", "reviewer")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _status_for(exc: ImHardError) -> int:
    if isinstance(exc, UnknownNameError | MissingFileError):
        return HTTPStatus.NOT_FOUND
    if isinstance(exc, images.UnsafePathError):
        return HTTPStatus.FORBIDDEN
    if isinstance(exc, InvalidValueError):
        return HTTPStatus.BAD_REQUEST
    return HTTPStatus.CONFLICT


class ReviewHandler(BaseHTTPRequestHandler):
    server: ReviewServer
    protocol_version = "HTTP/1.1"
    server_version = "imhard-review"
    timeout = 60  # a stalled client frees its thread
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, format, *args):  # one line per request is noise over hours of review
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_GET(self):
        self._dispatch(self._get)

    def do_POST(self):
        self._dispatch(self._post)

    def _dispatch(self, route) -> None:
        try:
            url = urlsplit(self.path)
            route(url.path, {k: v[-1] for k, v in parse_qs(url.query).items()})
        except ApiError as exc:
            self._json(exc.status, {"error": exc.message})
        except ImHardError as exc:
            self._json(_status_for(exc), {"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug: report it, keep serving
            traceback.print_exc(file=sys.stderr)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {exc}"})

    # -- routes -------------------------------------------------------------------------------

    def _get(self, path: str, query: dict) -> None:
        store = self.server.store
        if path in ("/", "/index.html"):
            return self._send(200, _static("index.html"), "text/html; charset=utf-8")
        if path.startswith("/static/"):
            name = path[len("/static/"):]
            if name not in STATIC_FILES:
                raise ApiError(404, f"no static file {name!r}")
            return self._send(200, _static(name), f"{STATIC_FILES[name]}; charset=utf-8")
        if path.startswith("/images/"):
            image_id = images.check_id(unquote(path[len("/images/"):]))
            rel, source = store.image(image_id)
            body, kind = images.image_bytes(store.home, rel, source)
            return self._send(200, body, kind, cache="private, max-age=3600")
        if path == "/api/status":
            return self._json(200, store.status(origin=query.get("origin") or None))
        if path == "/api/candidates":
            return self._json(200, {"candidates": store.candidates(
                verdict=query.get("verdict", "pending"), origin=query.get("origin") or None,
                limit=_int(query, "limit", DEFAULT_LIMIT, MAX_LIMIT),
                offset=_int(query, "offset", 0, None), id=query.get("id"))})
        if path == "/api/decisions":
            rows = store.current_decisions().to_pylist()
            return self._json(200, {"decisions": [
                {**r, "at": r["at"].isoformat().replace("+00:00", "Z")} for r in rows]})
        if path == "/api/history":
            return self._json(200, {"events": store.history(query.get("id"))})
        raise ApiError(404, f"no such page: {path}")

    def _post(self, path: str, query: dict) -> None:
        store = self.server.store
        if path == "/api/decisions":
            body = self._body(DECISION_FIELDS)
            for name in ("id", "verdict"):
                if not isinstance(body.get(name), str) or not body[name]:
                    raise ApiError(400, f"field {name!r} is required (a non-empty string)")
            events = store.decide(body["id"], body["verdict"], reason=body.get("reason"),
                                  tags=body.get("tags"), note=body.get("note"),
                                  reviewer=body.get("reviewer"))
            return self._json(200, {"event": events[0]})
        if path == "/api/undo":
            body = self._body(UNDO_FIELDS)
            result = store.undo(id=body.get("id"), reviewer=body.get("reviewer"))
            if result is None:
                raise ApiError(409, "nothing to undo")
            return self._json(200, result)
        raise ApiError(404, f"no such endpoint: POST {path}")

    # -- plumbing -----------------------------------------------------------------------------

    def _body(self, allowed: tuple[str, ...]) -> dict:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ApiError(411, "send the JSON body with a Content-Length, not chunked")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "Content-Length is not a number") from None
        if length > MAX_BODY:
            self._drain(length)
            raise ApiError(413, f"request body is {length:,} bytes; the limit is {MAX_BODY:,}")
        raw = self.rfile.read(max(length, 0))
        if self.headers.get_content_type() != "application/json":
            # Also keeps other web pages from posting here: JSON needs a CORS preflight.
            raise ApiError(415, "send the body as Content-Type: application/json")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"malformed JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise ApiError(400, f"unknown field(s) {', '.join(unknown)}; "
                                f"allowed: {', '.join(allowed)}")
        return body

    def _drain(self, length: int) -> None:
        self.close_connection = True
        left = min(length, DRAIN_LIMIT)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)

    def _json(self, status: int, obj) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, kind: str, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _int(query: dict, name: str, default: int, maximum: int | None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {raw!r}") from None
    if value < 0 or (maximum is not None and value > maximum):
        raise ApiError(400, f"{name} must be between 0 and {maximum or 'any'}, got {value}")
    return value


class ReviewServer(ThreadingHTTPServer):
    """The HTTP server; owns a read-write :class:`ReviewStore` until :meth:`stop`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, home=None, host: str = "127.0.0.1", port: int = 0,
                 verbose: bool = False):
        self.store = ReviewStore(home)
        self.verbose = verbose
        self._thread: threading.Thread | None = None
        try:
            super().__init__((host, port), ReviewHandler)
        except OSError as exc:
            self.store.close()
            raise ImHardError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        write_json_atomic(server_info_path(self.store.home), {
            "url": self.url, "pid": os.getpid(),
            "started": datetime.now(timezone.utc).isoformat()})

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> ReviewServer:
        """Serve in a background thread (for scripts, tests and the demo); returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="imhard-review",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the database (checkpointing it) and forget the address."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
        self.server_close()
        info = server_info_path(self.store.home)
        try:
            if json.loads(info.read_text()).get("pid") == os.getpid():
                info.unlink()
        except (OSError, ValueError):
            pass
        self.store.close()


def start_server(home=None, host: str = "127.0.0.1", port: int = 0) -> ReviewServer:
    """Start the review server in a background thread; ``server.url`` says where, ``stop()``."""
    return ReviewServer(home, host, port).start()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(home=None, host: str = "127.0.0.1", port: int = 8765, verbose: bool = False,
          echo=print) -> None:
    """Serve the review page until Ctrl-C or SIGTERM (what ``imhard review serve`` runs)."""
    server = ReviewServer(home, host, port, verbose=verbose)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly: close and checkpoint
    status = server.store.status()
    echo(f"Review page: {server.url}  ({status['pending']} pending of {status['total']}; "
         "Ctrl-C to stop)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        echo(f"warning: listening on {host}: anyone who can reach it can record decisions")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        echo("Stopped; every accepted decision is saved.")
    finally:
        server.stop()
