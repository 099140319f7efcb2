"""The review server against strangers (issue 9, defect 2): foreign Host names (DNS rebinding)
and bodies shorter than their Content-Length, in a real server process."""

from __future__ import annotations

import json
import socket

import pytest
from test_review_server import CHELSEA, Client

from imagenet_hard.review import ReviewStore
from imagenet_hard.review.app import own_hosts

#: Far above the server's body timeout and below the old 60 s hang: a test that fails on a hang.
SOCKET_TIMEOUT = 30


def raw_request(url: str, head: str, body: bytes = b"") -> tuple[int, dict | bytes]:
    """Send ``head`` (request line and headers, no blank line) and ``body`` as they are; return
    the status and the JSON answer. Raises socket.timeout if the server does not answer."""
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body)
        data = b""
        while chunk := s.recv(65536):  # the server closes after these answers
            data += chunk
    header, _, payload = data.partition(b"\r\n\r\n")
    status = int(header.split()[1])
    return status, (json.loads(payload) if payload.startswith(b"{") else payload)


def port_of(server) -> int:
    return int(server.url.rstrip("/").rsplit(":", 1)[1])


def decision(image_id: str = CHELSEA) -> bytes:
    return json.dumps({"id": image_id, "verdict": "remove", "reason": "ill-posed"}).encode()


def log_lines(server) -> list[str]:
    out = server.stop()
    return [line for line in out.splitlines() if line.strip() and not line.startswith("Stopped")]


def test_foreign_host_is_refused_for_every_route_and_records_nothing(review_server, sample_run):
    port = port_of(review_server)
    body = decision()
    foreign = ["attacker.test", f"attacker.test:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}",
               f"127.0.0.1:{port}.attacker.test", f"localhost.attacker.test:{port}"]
    for host in foreign:
        status, answer = raw_request(review_server.url, (
            f"POST /api/decisions HTTP/1.1\nHost: {host}\nContent-Type: application/json\n"
            f"Content-Length: {len(body)}"), body)
        assert status == 421, (host, answer)
        assert f"127.0.0.1:{port}" in answer["error"]
        for path in ["/", "/static/review.js", "/api/status", "/api/candidates",
                     "/images/" + CHELSEA]:
            status, answer = raw_request(review_server.url, f"GET {path} HTTP/1.1\nHost: {host}")
            assert status == 421, (host, path)
            assert b"chelsea" not in json.dumps(answer).encode()
    assert raw_request(review_server.url, "GET /api/status HTTP/1.0")[0] == 421  # no Host
    two = f"GET /api/status HTTP/1.1\nHost: 127.0.0.1:{port}\nHost: attacker.test"
    assert raw_request(review_server.url, two)[0] == 421
    for own in [f"127.0.0.1:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"]:
        status, answer = raw_request(review_server.url,
                                     f"GET /api/status HTTP/1.1\nHost: {own}\nConnection: close")
        assert status == 200 and answer["events"] == 0, own
    lines = log_lines(review_server)
    assert len(lines) == 6 * 6 + 2 and all("refused Host" in line for line in lines)
    with ReviewStore(sample_run.home) as store:
        assert store.history() == []


def test_own_host_names_include_the_host_given_and_the_port():
    assert own_hosts("127.0.0.1", 8765) == {"127.0.0.1:8765", "localhost:8765", "[::1]:8765"}
    assert "review.lab:8765" in own_hosts("Review.LAB", 8765)
    assert "[::1]:80" in own_hosts("::1", 80) and "localhost" in own_hosts("::1", 80)
    assert "localhost" not in own_hosts("127.0.0.1", 8765)  # the port is required off port 80


@pytest.mark.parametrize("promised", [2_000_000, 1000], ids=["over-the-limit", "under-it"])
def test_short_body_gets_400_at_once_and_one_log_line(review_server, sample_run, promised):
    port = port_of(review_server)
    status, answer = raw_request(review_server.url, (
        f"POST /api/decisions HTTP/1.1\nHost: 127.0.0.1:{port}\n"
        f"Content-Type: application/json\nContent-Length: {promised}"), b"{}")
    assert status == 400
    assert f"ended after 2 of the {promised:,} bytes" in answer["error"]
    assert Client(review_server.url).decide(CHELSEA, "keep")[0] == 200  # still serving
    lines = log_lines(review_server)
    assert lines == [f"127.0.0.1 POST /api/decisions: body ended after 2 of the {promised:,} "
                     "bytes its Content-Length promised (400)"]
    with ReviewStore(sample_run.home) as store:
        assert [e["verdict"] for e in store.history()] == ["keep"]
