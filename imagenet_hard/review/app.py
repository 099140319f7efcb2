"""The review web page and its JSON API, served by the one process that owns ``review.duckdb``.

Standard-library HTTP (``ThreadingHTTPServer``); every request goes through one
:class:`~imagenet_hard.review.store.ReviewStore`, which serialises access to the DuckDB
connection with its lock. A decision is committed before its response is sent.

Routes: ``GET /`` (the page), ``GET /static/<file>``, ``GET /api/status``,
``GET /api/candidates?verdict=pending&origin=O&limit=N&offset=K&id=ID``, ``GET /api/decisions``,
``GET /api/history?id=ID``, ``POST /api/decisions``, ``POST /api/relabel``, ``POST /api/undo``,
``GET /images/<id>``.
Errors are JSON ``{"error": message}`` with a 4xx status; the server keeps running.

Requests from strangers: every request (GET too) must name the server by one of its own Host
names (127.0.0.1, localhost, [::1] or the ``--host`` given, with the port), else 421 and nothing
is read or recorded: a web page the reviewer visits cannot reach it through DNS rebinding, and a
foreign page cannot post JSON without a CORS preflight, which is never granted. A body must
arrive within ``BODY_TIMEOUT`` seconds; one shorter than its ``Content-Length`` gets 400 and one
log line instead of holding a thread.

Standard-library HTTP rather than Starlette/uvicorn: uvicorn has no request-body timeout (a short
body waits until the client leaves), Starlette's trusted-host check answers 400 and neither limits
body size, so each guarantee here would be hand-written on that stack too, at the price of new
dependencies and of rewriting what the durability and concurrency tests pin down.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ImHardError, InvalidValueError, MissingFileError, UnknownNameError
from ..files import write_json_atomic
from ..labels import parse_labels
from . import images
from .store import ReviewStore, server_info_path

MAX_BODY = 1 << 20          # 1 MB: a decision is a few hundred bytes
DRAIN_LIMIT = 64 << 20      # read and discard an oversized body up to this, so the client sees 413
#: Seconds the whole body may take to arrive (a decision is a few hundred bytes).
BODY_TIMEOUT = 3.0
#: Names the server always answers to besides ``--host`` (with the port).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
STATIC_FILES = {"index.html": "text/html", "review.css": "text/css",
                "review.js": "text/javascript"}
DECISION_FIELDS = ("id", "verdict", "reason", "tags", "note", "reviewer")
UNDO_FIELDS = ("id", "reviewer")
RELABEL_FIELDS = ("id", "label", "reason", "note", "reviewer")


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
            self._check_host()
            url = urlsplit(self.path)
            route(url.path, {k: v[-1] for k, v in parse_qs(url.query).items()})
        except ApiError as exc:
            self._json(exc.status, {"error": exc.message})
        except ImHardError as exc:
            self._json(_status_for(exc), {"error": str(exc)})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
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
        if path == "/api/relabel":
            body = self._body(RELABEL_FIELDS)
            label = body.get("label")
            if not isinstance(body.get("id"), str) or not body["id"] or not isinstance(label, list) \
                    or not all(isinstance(x, (int, str)) and not isinstance(x, bool) for x in label):
                raise ApiError(400, "fields 'id' (a string) and 'label' (a list of class indices "
                                    "or names) are required")
            event = store.relabel(body["id"], parse_labels(label), body.get("reason"),
                                  note=body.get("note"), reviewer=body.get("reviewer"))
            return self._json(200, {"event": event})
        if path == "/api/undo":
            body = self._body(UNDO_FIELDS)
            result = store.undo(id=body.get("id"), reviewer=body.get("reviewer"))
            if result is None:
                raise ApiError(409, "nothing to undo")
            return self._json(200, result)
        raise ApiError(404, f"no such endpoint: POST {path}")

    # -- plumbing -----------------------------------------------------------------------------

    def _check_host(self) -> None:
        hosts = self.headers.get_all("Host") or []
        if len(hosts) == 1 and hosts[0].strip().lower() in self.server.own_hosts:
            return
        self.close_connection = True  # a body, if any, is never read
        self._log_line(f"refused Host {_printable(', '.join(hosts)) or '(none)'!r} (421)")
        raise ApiError(421, "this server answers only to " + ", ".join(sorted(
            self.server.own_hosts)) + "; open the page at one of those addresses")

    def _log_line(self, msg: str) -> None:
        """One line on the console, for requests that went wrong on the client's side."""
        sys.stderr.write(f"{self.address_string()} {self.command} "
                         f"{_printable(self.path)[:200]}: {msg}\n")

    def _chunks(self, length: int) -> Iterator[bytes]:
        """Up to ``length`` body bytes as they arrive; stops early at the end of the stream or
        once BODY_TIMEOUT has passed, so a client that promises more than it sends holds no
        thread for long."""
        deadline = time.monotonic() + BODY_TIMEOUT
        try:
            while length > 0:
                self.connection.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = self.rfile.read1(min(length, 1 << 16))
                if not chunk:
                    return
                length -= len(chunk)
                yield chunk
        except TimeoutError:
            return
        finally:
            self.connection.settimeout(self.timeout)

    def _short_body(self, got: int, length: int) -> ApiError:
        self.close_connection = True
        self._log_line(f"body ended after {got:,} of the {length:,} bytes its Content-Length "
                       "promised (400)")
        return ApiError(400, f"the request body ended after {got:,} of the {length:,} bytes its "
                             "Content-Length promised; send the whole body")

    def _body(self, allowed: tuple[str, ...]) -> dict:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ApiError(411, "send the JSON body with a Content-Length, not chunked")
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "Content-Length is not a non-negative number") from None
        if length > MAX_BODY:
            self.close_connection = True
            got = sum(len(c) for c in self._chunks(min(length, DRAIN_LIMIT)))
            if got < min(length, DRAIN_LIMIT):
                raise self._short_body(got, length)
            raise ApiError(413, f"request body is {length:,} bytes; the limit is {MAX_BODY:,}")
        raw = b"".join(self._chunks(length))
        if len(raw) < length:
            raise self._short_body(len(raw), length)
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


def _printable(text: str) -> str:
    """``text`` with control characters replaced: a stranger's Host or path cannot forge log
    lines or terminal escapes."""
    return "".join(c if c.isprintable() else "?" for c in text)


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
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), ReviewHandler)
        except OSError as exc:
            self.store.close()
            raise ImHardError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.own_hosts = own_hosts(host, self.server_address[1])
        write_json_atomic(server_info_path(self.store.home), {
            "url": self.url, "pid": os.getpid(),
            "started": datetime.now(timezone.utc).isoformat()})

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{_bracket(host)}:{port}/"

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


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def own_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values the server answers: loopback names and ``host``, with the port
    (and without it on port 80, where browsers leave it out)."""
    names = {*LOOPBACK_NAMES, _bracket(host.strip().lower())}
    return frozenset({f"{n}:{port}" for n in names} | (names if port == 80 else set()))


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
    if host in ("0.0.0.0", "::", ""):
        echo(f"warning: listening on every interface, yet answering only requests addressed to "
             f"{host or '0.0.0.0'} or loopback names; pass --host with the name or address "
             "reviewers type")
    elif host not in ("127.0.0.1", "localhost", "::1"):
        echo(f"warning: listening on {host}: anyone who can reach it can record decisions")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        echo("Stopped; every accepted decision is saved.")
    finally:
        server.stop()
