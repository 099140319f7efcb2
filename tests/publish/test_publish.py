"""Publishing: selection by review verdict, shards, card, determinism, --check, and the Hub push."""

from __future__ import annotations

import base64
import io
import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image
from run_support import write_run

from imagenet_hard import build_source, labels, records
from imagenet_hard.catalog import parse as parse_table
from imagenet_hard.cli import main
from imagenet_hard.errors import InvalidValueError
from imagenet_hard.files import sha256_bytes
from imagenet_hard.mining import open_run
from imagenet_hard.publish import check, features, parse_size, publish, push
from imagenet_hard.publish.card import card_header
from imagenet_hard.publish.hub import MISSING_TOKEN

ON_ID = "objectnet/images/chairs/test_chair.png"
TOKEN = "hf_TopSecretTestToken1234567890"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _objectnet_source(home: Path) -> None:
    """A one-image ObjectNet source table, laid out as the builder lays it out."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    rel = Path("sources/objectnet") / ON_ID.split("/", 1)[1]
    (home / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(home / rel)
    label = [559]  # folding chair
    row = records.SourceRow(
        id=ON_ID, origin="objectnet", path=str(rel), label=label,
        english_label=labels.english_labels(label), label_space="objectnet_113",
        width=40, height=30, sha256=sha256_bytes((home / rel).read_bytes()), label_paper=label)
    records.write_source_table([row], parse_table("objectnet").path(home), "objectnet",
                               {"objectnet_113": [559], "objectnet_113_paper": [559]})


def _write_run(home: Path, name: str):
    """A finished mining run whose candidates are every sample image plus the ObjectNet one."""
    cands = {r["id"]: {"top5": [1, 2, 3, 4, 5], "top5_prob": [0.5, 0.2, 0.1, 0.1, 0.1],
                       "best_crop": 0}
             for source in ("sample", "objectnet")
             for r in records.read_table(parse_table(source).path(home)).to_pylist()}
    return write_run(home, name, ["sample", "objectnet"], cands)


@pytest.fixture(scope="module")
def pub_home(tmp_path_factory):
    """Sample + ObjectNet sources and a run named ``r1`` (tests write only under their tmp_path)."""
    home = tmp_path_factory.mktemp("pub_home")
    build_source("sample", home=home)
    _objectnet_source(home)
    _write_run(home, "r1")
    return home


def _ids(home: Path) -> list[str]:
    return sorted(open_run("r1", home).candidates().column("id").to_pylist())


def decisions(entries) -> pa.Table:
    """A DECISION_SCHEMA table from (id, verdict, reason, tags) tuples."""
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return pa.Table.from_pylist(
        [dict(id=i, verdict=v, reason=r, tags=t, note=None, reviewer="test", at=at)
         for i, v, r, t in entries], schema=records.DECISION_SCHEMA)


@pytest.fixture(scope="module")
def reviewed(pub_home):
    """Keep six (incl. ObjectNet), remove two, leave two sample images pending."""
    sample = [i for i in _ids(pub_home) if i.startswith("sample/")]
    keep = [(i, "keep", None, ["rare case"] if n == 0 else []) for n, i in enumerate(sample[:5])]
    keep.append((ON_ID, "keep", None, []))
    remove = [(sample[5], "remove", "ill-posed", []), (sample[6], "remove", "wrong label", [])]
    return decisions(keep + remove), sample[7:]


@pytest.fixture(scope="module")
def published(pub_home, reviewed, tmp_path_factory):
    out = tmp_path_factory.mktemp("pub") / "imagenet-hard"
    return publish("r1", reviewed[0], out, home=pub_home)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_kept_rows_load_back_with_the_right_features(published, reviewed):
    ds = datasets.load_dataset(str(published.out), split="validation")
    assert ds.features == features()
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.features["label"] == datasets.List(datasets.Value("int64"))
    assert ds.features["english_label"] == datasets.List(datasets.Value("string"))
    assert ds.column_names == ["image", "label", "origin", "english_label", "id"]
    assert len(ds) == 6 and published.rows == 6
    assert not set(reviewed[1]) & set(ds["id"]), "pending rows must be left out by default"
    assert ds["origin"] == sorted(ds["origin"])                   # sorted by origin, then id
    chelsea = ds[ds["id"].index("sample/n02123045/chelsea.png")]   # first sample id: kept
    assert chelsea["label"] == [281, 282] and chelsea["english_label"] == ["tabby cat", "tiger cat"]
    assert chelsea["image"].size == (451, 300)
    card = (published.out / "README.md").read_text()
    assert "| ill-posed | 1 |" in card and "| wrong label | 1 |" in card
    assert "| rare case | 1 |" in card
    assert "| `objectnet` | 1 |" in card and "| `sample` | 5 |" in card
    assert (published.out / "fingerprint.txt").read_text().strip() == published.fingerprint
    assert "num_examples: 6" in card and "path: data/validation-*" in card


def test_original_bytes_are_embedded(published, pub_home):
    table = pq.read_table(published.shards[0])
    src = {r["id"]: r for r in records.read_table(parse_table("sample").path(pub_home)).to_pylist()}
    for row in table.to_pylist():
        if row["origin"] == "sample":
            assert sha256_bytes(row["image"]["bytes"]) == src[row["id"]]["sha256"]
            assert row["image"]["path"] == row["id"]


def test_objectnet_gets_a_red_border_and_keeps_every_other_pixel(published, pub_home):
    row = next(r for r in pq.read_table(published.shards[0]).to_pylist() if r["id"] == ON_ID)
    assert row["image"]["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    assert row["image"]["path"].endswith(".png")
    stored = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))
    original = np.asarray(Image.open(pub_home / "sources/objectnet/images/chairs/test_chair.png"))
    assert stored.shape == original.shape == (30, 40, 3)
    ring = np.ones(stored.shape[:2], bool)
    ring[1:-1, 1:-1] = False
    assert (stored[ring] == [255, 0, 0]).all()
    assert (stored[1:-1, 1:-1] == original[1:-1, 1:-1]).all()


def test_pending_rows_come_only_with_include_pending(pub_home, reviewed, tmp_path):
    res = publish("r1", reviewed[0], tmp_path / "all", include_pending=True, home=pub_home)
    ids = set(pq.read_table(res.shards[0], columns=["id"]).column("id").to_pylist())
    assert len(ids) == 8 and set(reviewed[1]) <= ids
    assert "are **included** in this release" in (res.out / "README.md").read_text()


def test_nothing_reviewed_gives_a_hint_not_an_empty_dataset(pub_home, tmp_path):
    with pytest.raises(InvalidValueError, match="--include-pending"):
        publish("r1", None, tmp_path / "x", home=pub_home)
    assert not (tmp_path / "x").exists()
    everything_removed = decisions([(i, "remove", "duplicate", []) for i in _ids(pub_home)])
    with pytest.raises(InvalidValueError, match="nothing to publish"):
        publish("r1", everything_removed, tmp_path / "x", include_pending=True, home=pub_home)


def test_publishing_twice_gives_identical_bytes(pub_home, reviewed, published, tmp_path):
    again = publish("r1", reviewed[0], tmp_path / "imagenet-hard", home=pub_home)
    assert _files(again.out) == _files(published.out)
    replaced = publish("r1", reviewed[0], again.out, home=pub_home)    # replaces its own folder
    assert _files(replaced.out) == _files(published.out)


def test_small_max_shard_size_splits_by_bytes(pub_home, reviewed, published, tmp_path):
    res = publish("r1", reviewed[0], tmp_path / "split", max_shard_size="100KB", home=pub_home)
    names = [p.name for p in res.shards]
    n = len(names)
    assert n > 2 and names == [f"validation-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    for shard in res.shards:
        t = pq.read_table(shard)
        if t.num_rows > 1:   # a single image larger than the limit gets a shard of its own
            assert sum(len(b["bytes"]) for b in t.column("image").to_pylist()) <= 100_000
    ds = datasets.load_dataset(str(res.out), split="validation")
    assert ds["id"] == pq.read_table(published.shards[0], columns=["id"]).column("id").to_pylist()
    assert res.fingerprint == published.fingerprint            # layout is not content
    assert check(res.out).ok


def test_folder_named_imagenet_hard_loads_by_name(published, monkeypatch):
    monkeypatch.chdir(published.out.parent)
    ds = datasets.load_dataset("imagenet-hard", split="validation")
    assert len(ds) == 6 and ds.features == features()


def test_check_passes_then_catches_a_tampered_shard(pub_home, reviewed, tmp_path):
    res = publish("r1", reviewed[0], tmp_path / "imagenet-hard", home=pub_home)
    ok = CliRunner().invoke(main, ["publish", "--check", str(res.out)])
    assert ok.exit_code == 0, ok.output
    assert f"fingerprint {res.fingerprint}" in ok.output

    shard = res.shards[0]
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["label"] = [1000]
    rows[1]["image"] = {"bytes": b"not an image", "path": "broken.jpg"}
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    bad = CliRunner().invoke(main, ["publish", "--check", str(res.out)])
    assert bad.exit_code == 1
    assert "outside 0..999" in bad.output
    assert "does not decode" in bad.output
    assert "fingerprint is" in bad.output
    assert "Traceback" not in bad.output


def test_check_reports_a_missing_shard_and_wrong_counts(published, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(published.out, copy)
    (copy / "data" / "validation-00000-of-00001.parquet").rename(copy / "data" / "validation-00000-of-00002.parquet")
    report = check(copy)
    assert not report.ok and "complete -NNNNN-of-MMMMM series" in report.problems[0]

    # wrong counts: the shard holds one row fewer than the card says, overall and for its origin
    whole = check(published.out)
    assert whole.ok, whole.problems
    fewer = tmp_path / "fewer"
    shutil.copytree(published.out, fewer)
    shard = fewer / "data" / "validation-00000-of-00001.parquet"
    table = pq.read_table(shard)
    dropped = table.slice(0, 1).column("origin")[0].as_py()
    pq.write_table(table.slice(1), shard)
    report = check(fewer)
    assert not report.ok
    assert report.rows == whole.rows - 1
    by_origin = {**whole.by_origin, dropped: whole.by_origin[dropped] - 1}
    by_origin = {k: v for k, v in by_origin.items() if v}
    assert report.by_origin == by_origin
    assert (f"card says {whole.rows} rows in validation, the shards hold {whole.rows - 1}"
            in report.problems)
    assert (f"card's per-origin counts {whole.by_origin} differ from the shards' {by_origin}"
            in report.problems)


def test_cli_publish_with_include_pending(pub_home, tmp_path):
    out = tmp_path / "cli-out"
    res = CliRunner().invoke(main, ["publish", "--run", "r1", "--include-pending", "--out", str(out),
                                    "--home", str(pub_home), "--max-shard-size", "1GB"])
    assert res.exit_code == 0, res.output
    assert "published 10 images (objectnet 1, sample 9) in 1 shard(s)" in res.output
    assert len(datasets.load_dataset(str(out), split="validation")) == 10


def test_cli_without_review_or_include_pending_explains(pub_home, tmp_path):
    res = CliRunner().invoke(main, ["publish", "--run", "r1", "--out", str(tmp_path / "o"),
                                    "--home", str(pub_home)])
    assert res.exit_code == 1
    assert "--include-pending" in res.output and "Traceback" not in res.output
    bad = CliRunner().invoke(main, ["publish", "--run", "r1", "--max-shard-size", "lots"])
    assert bad.exit_code == 2 and "500MB" in bad.output


def test_out_folder_with_foreign_files_is_refused(pub_home, reviewed, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(InvalidValueError, match="thesis.tex"):
        publish("r1", reviewed[0], tmp_path / "mine", home=pub_home)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_parse_size():
    assert parse_size("500MB") == 500_000_000
    assert parse_size("1GB") == 10**9
    assert parse_size("1.5 GiB") == 3 * 2**29
    assert parse_size("2048") == 2048
    with pytest.raises(InvalidValueError):
        parse_size("12 parsecs")


def test_packaged_template_is_the_top_level_template():
    packaged = REPO_ROOT / "imagenet_hard" / "templates" / "dataset_card.md"
    assert packaged.read_bytes() == (REPO_ROOT / "dataset_card.md").read_bytes(), (
        "dataset_card.md is the template; copy it: cp dataset_card.md imagenet_hard/templates/")


# ---- the Hub, served from 127.0.0.1 -------------------------------------------------------------

class FakeHub(BaseHTTPRequestHandler):
    """Just enough of the Hub API for create_repo, create_branch and upload_folder."""

    state: dict

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        st = self.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        st["auth"].add(self.headers.get("Authorization"))
        st["calls"].append((method, self.path.split("?")[0]))
        if st.get("reject"):
            return self._reply(401, {"error": "Invalid credentials in Authorization header"})
        parts = self.path.split("?")[0].strip("/").split("/")
        base = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        if parts[:3] == ["api", "repos", "create"]:
            st["create"] = json.loads(body)
            return self._reply(200, {"url": f"{base}/datasets/{st['create']['organization']}/{st['create']['name']}"})
        if parts[:2] == ["api", "validate-yaml"]:
            st["validated"] = json.loads(body)
            return self._reply(200, {"warnings": []})
        kind = parts[4] if len(parts) > 4 else ""
        if kind == "branch":
            st["branches"].append(parts[5])
            return self._reply(200, {})
        if kind == "tree":
            return self._reply(200, [{"type": "file", "path": p, "size": len(b), "oid": "0" * 40}
                                     for p, b in st["files"].items()])
        if kind == "preupload":
            files = json.loads(body)["files"]
            return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                "shouldIgnore": False} for f in files]})
        if kind == "commit":
            st["commit_revision"] = parts[5]
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    st["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    st["files"].pop(item["value"]["path"], None)
            return self._reply(200, {"commitUrl": f"{base}/datasets/{parts[2]}/{parts[3]}/commit/{'1' * 40}",
                                     "commitOid": "1" * 40})
        return self._reply(404, {"error": f"fake hub has no {self.path}"})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub.constants

    state = {"calls": [], "auth": set(), "branches": [], "files": {"data/validation-00000-of-00009.parquet": b"stale"}}
    handler = type("Hub", (FakeHub,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield state
    server.shutdown()
    server.server_close()


def test_push_uploads_the_folder_and_never_shows_the_token(published, hub, monkeypatch, caplog):
    caplog.set_level("DEBUG")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    res = CliRunner().invoke(main, ["publish", "--push", "me/imagenet-hard", "--out", str(published.out),
                                    "--private", "--revision", "v1"])
    assert res.exit_code == 0, res.output
    assert TOKEN not in res.output and TOKEN not in caplog.text
    assert hub["auth"] == {f"Bearer {TOKEN}"}
    assert hub["create"] == {"name": "imagenet-hard", "organization": "me", "visibility": "private",
                             "type": "dataset"}
    assert hub["branches"] == ["v1"] and hub["commit_revision"] == "v1"
    assert hub["files"] == _files(published.out)        # and the stale shard was deleted
    assert hub["validated"]["repoType"] == "dataset"
    header = card_header(hub["validated"]["content"])
    assert header["configs"][0]["data_files"] == [{"split": "validation", "path": "data/validation-*"}]
    assert header["task_categories"] == ["image-classification"] and header["license"] == "other"
    assert "pushed to" in res.output and "/tree/v1" in res.output


def test_rejected_token_is_a_clear_message_without_the_token(published, hub, monkeypatch, caplog):
    caplog.set_level("DEBUG")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub["reject"] = True
    res = CliRunner().invoke(main, ["publish", "--push", "me/imagenet-hard", "--out", str(published.out)])
    assert res.exit_code == 1
    assert "rejected the token" in res.output and "HTTP 401" in res.output
    assert TOKEN not in res.output and TOKEN not in caplog.text and "Traceback" not in res.output


def test_missing_token_says_how_to_log_in(published, hub):
    res = CliRunner().invoke(main, ["publish", "--push", "me/imagenet-hard", "--out", str(published.out)])
    assert res.exit_code == 1
    assert "set HF_TOKEN or run `hf auth login`" in res.output
    assert hub["calls"] == []
    with pytest.raises(Exception, match="hf auth login"):
        push(published.out, "me/imagenet-hard", verify=False)
    assert MISSING_TOKEN.startswith("no Hugging Face token")


def test_cli_publishes_what_the_review_store_kept(sample_run):
    from imagenet_hard.review import ReviewStore

    keep = sample_run.ids[:4] + sample_run.objectnet_ids
    with ReviewStore() as store:
        store.import_run(sample_run.run)
        store.decide(keep, "keep", tags=["rare-case"], reviewer="t")
        store.decide(sample_run.ids[4], "remove", reason="ill-posed", reviewer="t")
        store.decide(sample_run.ids[4], "keep", reviewer="t")          # the latest verdict wins
        store.decide(sample_run.ids[5], "remove", reason="wrong-label", reviewer="t")
    res = CliRunner().invoke(main, ["publish", "--run", sample_run.run])
    assert res.exit_code == 0, res.output
    out = sample_run.home / "dist" / "imagenet-hard"
    ids = datasets.load_dataset(str(out), split="validation")["id"]
    assert sorted(ids) == sorted(set(keep) | {sample_run.ids[4]})
    card = (out / "README.md").read_text()
    assert "| wrong-label | 1 |" in card and "ill-posed |" not in card
    checked = CliRunner().invoke(main, ["publish", "--check", str(out)])
    assert checked.exit_code == 0, checked.output
