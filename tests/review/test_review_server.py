"""The review server in its own process: durability, concurrency, bad input, images, the lock."""

from __future__ import annotations

import http.client
import io
import json
import threading
from urllib.parse import urlsplit

from click.testing import CliRunner
from PIL import Image

from imagenet_hard.cli import main
from imagenet_hard.review import ReviewStore

CHELSEA = "sample/n02123045/chelsea.png"


class Client:
    """A keep-alive HTTP connection to the server (one per thread)."""

    def __init__(self, url):
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def request(self, method, path, body=None, headers=None, raw=None):
        headers = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        payload = resp.read()
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
        kind = resp.getheader("Content-Type", "")
        return resp.status, (json.loads(payload) if kind.startswith("application/json")
                             else payload)

    def decide(self, id, verdict="keep", **extra):
        return self.request("POST", "/api/decisions", {"id": id, "verdict": verdict, **extra})


def test_sigkill_right_after_200s_loses_no_decision(review_server, sample_run):
    client = Client(review_server.url)
    sent = []
    for n in range(30):
        image_id = sample_run.ids[n % len(sample_run.ids)]
        verdict = "keep" if n % 3 else "remove"
        status, body = client.decide(image_id, verdict, note=f"decision {n}")
        assert status == 200, body
        sent.append((image_id, verdict, f"decision {n}"))
    review_server.kill()  # SIGKILL: no shutdown, no checkpoint
    assert review_server.proc.returncode == -9
    with ReviewStore(sample_run.home) as store:
        events = store.history()
    assert [(e["id"], e["verdict"], e["note"]) for e in events] == sent


def test_eight_threads_fifty_decisions_each(review_server, sample_run):
    errors, statuses = [], []

    def worker(k):
        client = Client(review_server.url)
        try:
            for n in range(50):
                image_id = sample_run.ids[(k + n) % len(sample_run.ids)]
                status, body = client.decide(image_id, "remove" if n % 2 else "keep",
                                             reviewer=f"thread-{k}")
                statuses.append(status)
                if status != 200:
                    errors.append(body)
        except Exception as exc:  # surfaced below, not swallowed
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert statuses == [200] * 400
    review_server.stop()
    with ReviewStore(sample_run.home) as store:
        events = store.history()
    assert len(events) == 400
    assert sorted({e["reviewer"] for e in events}) == [f"thread-{k}" for k in range(8)]
    assert len({e["seq"] for e in events}) == 400


def test_bad_requests_get_clear_4xx_and_the_server_keeps_running(review_server):
    c = Client(review_server.url)
    cases = [
        (c.request("POST", "/api/decisions", raw=b'{"id": "x", "verdict":',
                   headers={"Content-Type": "application/json"}), 400, "malformed JSON"),
        (c.request("POST", "/api/decisions", raw=b"[1, 2]",
                   headers={"Content-Type": "application/json"}), 400, "JSON object"),
        (c.decide(CHELSEA, "keep", colour="blue"), 400, "unknown field(s) colour"),
        (c.decide(CHELSEA, "maybe"), 400, "keep, remove"),
        (c.request("POST", "/api/decisions", {"verdict": "keep"}), 400, "'id' is required"),
        (c.decide(CHELSEA, "remove", reason="boring"), 400, "ill-posed, wrong-label"),
        (c.decide(CHELSEA, "keep", tags="illusion,x"), 400, "rare-case"),
        (c.decide("sample/n00000000/nope.png"), 404, "unknown candidate id"),
        (c.request("POST", "/api/decisions", raw=b'{"id": "x"}',
                   headers={"Content-Type": "text/plain"}), 415, "application/json"),
        (c.request("GET", "/api/candidates?limit=lots"), 400, "limit must be an integer"),
        (c.request("GET", "/api/nothing"), 404, "no such page"),
    ]
    for (status, body), want_status, want_text in cases:
        assert status == want_status, body
        assert want_text in body["error"], body
    big = json.dumps({"id": CHELSEA, "verdict": "keep", "note": "x" * (10 << 20)}).encode()
    status, body = Client(review_server.url).request(
        "POST", "/api/decisions", raw=big, headers={"Content-Type": "application/json"})
    assert status == 413 and "limit is 1,048,576" in body["error"]
    status, body = Client(review_server.url).request("GET", "/api/status")
    assert status == 200 and body["events"] == 0  # no bad request recorded anything
    assert review_server.proc.poll() is None


def test_image_ids_with_path_characters_read_nothing(review_server, sample_run):
    (sample_run.home.parent / "secret.txt").write_text("outside the data home")
    c = Client(review_server.url)
    for path in ["/images/../../etc/passwd", "/images/%2e%2e/%2e%2e/etc/passwd",
                 "/images/sample/..%2f..%2f..%2fsecret.txt", "/images/..%5csecret.txt",
                 "/images//etc/passwd", "/images/sample/n02123045/chelsea.png%00.txt",
                 "/images/sample/n02123045/missing.png"]:
        status, body = c.request("GET", path)
        assert 400 <= status < 500, (path, status)
        assert b"outside the data home" not in json.dumps(body).encode(), path
    status, body = c.request("GET", "/api/status")
    assert status == 200


def test_a_stored_path_outside_the_home_is_refused(sample_run):
    with ReviewStore(sample_run.home) as store:
        store.import_run(sample_run.run)
        store._sql("UPDATE candidates SET path = '../secret.png' WHERE id = ?", [CHELSEA])
    (sample_run.home.parent / "secret.png").write_bytes(b"not for you")
    from review_support import ReviewServerProcess

    server = ReviewServerProcess(sample_run.home)
    try:
        status, body = Client(server.url).request("GET", "/images/" + CHELSEA)
    finally:
        server.stop()
    assert status == 403 and "outside the data home" in body["error"]


def test_images_objectnet_gets_a_red_border_others_are_untouched(review_server, sample_run):
    c = Client(review_server.url)
    status, body = c.request("GET", "/images/" + CHELSEA)
    assert status == 200
    assert body == (sample_run.home / "sources/sample/n02123045/chelsea.png").read_bytes()
    mug = sample_run.objectnet_ids[0]
    status, body = c.request("GET", "/images/" + mug)
    assert status == 200
    served = Image.open(io.BytesIO(body)).convert("RGB")
    original = Image.open(sample_run.home / "sources" / "objectnet" /
                          mug.split("/", 1)[1]).convert("RGB")
    assert served.size == original.size
    w, h = served.size
    border = ([(x, 0) for x in range(w)] + [(x, h - 1) for x in range(w)]
              + [(0, y) for y in range(h)] + [(w - 1, y) for y in range(h)])
    assert {served.getpixel(p) for p in border} == {(255, 0, 0)}
    inner = [(1, 1), (w - 2, h - 2), (w // 2, h // 2), (1, h // 2)]
    assert [served.getpixel(p) for p in inner] == [original.getpixel(p) for p in inner]


def test_api_lists_filters_and_undoes(review_server, sample_run):
    c = Client(review_server.url)
    status, body = c.request("GET", "/api/candidates?origin=objectnet")
    assert status == 200
    assert [x["id"] for x in body["candidates"]] == sample_run.objectnet_ids
    assert body["candidates"][0]["top5_names"][1] == "coffee mug"
    assert c.decide(CHELSEA, "remove", reason="ill-posed", reviewer="ann")[0] == 200
    assert c.decide(sample_run.objectnet_ids[0], "keep", reviewer="bob")[0] == 200
    _, body = c.request("GET", "/api/candidates?verdict=pending&limit=100")
    assert len(body["candidates"]) == 7
    _, body = c.request("GET", "/api/status")
    assert (body["decided"], body["by_reason"]) == (2, {"ill-posed": 1})
    status, body = c.request("POST", "/api/undo", {"reviewer": "ann"})
    assert status == 200 and body["candidate"]["id"] == CHELSEA
    assert body["candidate"]["verdict"] == "pending"
    assert c.request("POST", "/api/undo", {"reviewer": "ann"})[0] == 409
    _, body = c.request("GET", "/api/decisions")
    assert [d["id"] for d in body["decisions"]] == [sample_run.objectnet_ids[0]]


def test_cli_says_the_server_holds_the_database(review_server):
    res = CliRunner().invoke(main, ["review", "status"])
    assert res.exit_code == 1
    assert "review server" in res.output and review_server.url in res.output
    assert "Traceback" not in res.output
    out = review_server.stop()
    assert review_server.proc.returncode == 0, out
    assert CliRunner().invoke(main, ["review", "status"]).exit_code == 0


def test_server_in_a_thread_for_scripts_and_the_demo(sample_run):
    from imagenet_hard.review import current_decisions, read_server_info, start_server

    with ReviewStore(sample_run.home) as store:
        store.import_run(sample_run.run)
    server = start_server(home=sample_run.home, port=0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert read_server_info(sample_run.home)["url"] == server.url
        assert Client(server.url).decide(CHELSEA, "keep", reviewer="demo")[0] == 200
        # the same process may read while its own server holds the file
        assert current_decisions(sample_run.home).column("id").to_pylist() == [CHELSEA]
    finally:
        server.stop()
    assert read_server_info(sample_run.home) is None
    assert current_decisions(sample_run.home).num_rows == 1
