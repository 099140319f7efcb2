"""Every test runs with its data home, HF caches and torch hub in a temporary folder.

`make test` runs the suite on every CPU with pytest-xdist (`-n auto`, `--dist loadfile` from
pyproject.toml). What keeps the workers apart: each test has its own data home and caches (below),
servers listen on port 0, session fixtures are per worker (``tmp_path_factory`` folders are), and
a file's tests run in one worker, in file order: the help examples share one workspace and run in
order (on the fixed port 8765, which no other file uses), and a file's module-scoped world is
built once. (`--dist loadgroup` would allow finer groups, but with pytest-xdist 3.8 and pytest 9
here it handed the tests of one `xdist_group` to both workers.)
"""

from __future__ import annotations

import os
import sys

import pytest


def pytest_configure(config):
    """Under xdist, each worker takes its share of the CPUs for torch (and for the processes it
    starts: the variables are inherited): two workers of two threads each on two cores spin
    against each other."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cpus or 1) // int(workers))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):
        # Longest first (xdist hands out files in this order: `--no-loadscope-reorder`), so that
        # no worker is left alone with a long file at the end: the two longest files, then files
        # with a slow test, then the rest; a file's tests stay together and in order.
        rank = {}
        for item in items:
            file = item.nodeid.split("::")[0]
            slow = 0 if file in LONGEST else 1 if item.get_closest_marker("slow") else 2
            rank[file] = min(rank.get(file, 2), slow)
        order = {id(item): n for n, item in enumerate(items)}
        items.sort(key=lambda item: (rank[item.nodeid.split("::")[0]], order[id(item)]))


#: The files that take longest (see the slowest tests printed after a run), started first.
LONGEST = ("tests/cli/test_demo.py", "tests/cli/test_help_examples.py")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("IMHARD_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return home


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory):
    """A data home with the offline ``sample`` source built once per session (read-only use)."""
    from imagenet_hard import build_source

    home = tmp_path_factory.mktemp("sample_home")
    build_source("sample", home=home)
    return home


# -- a fake mining run over the sample source (review, publish) ------------------------------

#: Sample photos that the fake run lists as candidates, with a plausible wrong judge top-5.
SAMPLE_RUN_TOP5 = {
    "chelsea.png": [285, 287, 281, 282, 283],
    "coffee.png": [504, 967, 968, 809, 925],
    "rocket.jpg": [812, 657, 744, 517, 908],
    "astronaut.png": [834, 617, 812, 457, 869],
    "clock_motion.png": [426, 409, 892, 635, 826],
    "motorcycle_left.png": [671, 665, 670, 444, 880],
    "grace_hopper.jpg": [457, 652, 834, 655, 906],
}
#: Two ObjectNet-origin images made from sample photos: (member, photo, crop box, label, top-5).
SAMPLE_RUN_OBJECTNET = [
    ("objectnet-1.0/images/mug/coffee_mug.png", "coffee.png", (60, 20, 460, 300), [504],
     [968, 504, 409, 892, 872]),
    ("objectnet-1.0/images/tripod/camera_tripod.png", "camera.png", (0, 0, 512, 512), [872],
     [759, 872, 409, 892, 504]),
]
SAMPLE_RUN_OBJECTNET_SPACE = [409, 504, 759, 872, 892, 968]
SAMPLE_RUN_PROBS = [0.41, 0.22, 0.12, 0.07, 0.04]


class SampleRun:
    """What :func:`make_sample_run` wrote: ``home``, ``run`` (its name), ``handle`` (the
    :class:`~imagenet_hard.mining.MiningRun`), ``candidates`` (the candidates file), ``ids`` (all
    candidate ids, sorted), ``sample_ids`` and ``objectnet_ids``."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return f"SampleRun(run={self.run!r}, home={str(self.home)!r}, {len(self.ids)} ids)"


def _objectnet_rows(home):
    import hashlib
    import io

    from PIL import Image

    from imagenet_hard import labels
    from imagenet_hard.records import SourceRow, make_id, write_source_table

    rows = []
    for member, photo, box, label, _top5 in SAMPLE_RUN_OBJECTNET:
        src = next((home / "sources" / "sample").glob(f"*/{photo}"))
        with Image.open(src) as im:
            crop = im.convert("RGB").crop(box)
        buf = io.BytesIO()
        crop.save(buf, format="PNG")
        dest = home / "sources" / "objectnet" / member
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(buf.getvalue())
        rows.append(SourceRow(
            id=make_id("objectnet", member), origin="objectnet",
            path=str(dest.relative_to(home)), label=label,
            english_label=labels.english_labels(label), label_space="objectnet_113",
            width=crop.width, height=crop.height,
            sha256=hashlib.sha256(buf.getvalue()).hexdigest(), label_paper=label))
    write_source_table(rows, home / "sources" / "objectnet.parquet", "objectnet",
                       {"objectnet_113": SAMPLE_RUN_OBJECTNET_SPACE,
                        "objectnet_113_paper": SAMPLE_RUN_OBJECTNET_SPACE})
    return rows


def make_sample_run(home, sample_home, run="sample-run"):
    """Give ``home`` the sample source (copied from ``sample_home``), a two-image ``objectnet``
    source and a finished mining run ``run`` over both (written as ``mine`` writes it)."""
    import shutil
    from pathlib import Path

    import pyarrow.parquet as pq
    from run_support import write_run

    home = Path(home)
    shutil.copytree(Path(sample_home) / "sources", home / "sources", dirs_exist_ok=True)
    cands = {}
    for n, row in enumerate(pq.read_table(home / "sources" / "sample.parquet").to_pylist()):
        top5 = SAMPLE_RUN_TOP5.get(row["id"].rsplit("/", 1)[-1])
        if top5:
            cands[row["id"]] = {"top5": top5, "top5_prob": SAMPLE_RUN_PROBS, "best_crop": 9 * n + 4}
    for row, spec in zip(_objectnet_rows(home), SAMPLE_RUN_OBJECTNET, strict=True):
        cands[row.id] = {"top5": spec[4], "top5_prob": SAMPLE_RUN_PROBS, "best_crop": 130}
    handle = write_run(home, run, ["objectnet", "sample"], cands)
    ids = sorted(cands)
    return SampleRun(home=home, run=run, handle=handle, candidates=handle.candidates_path,
                     ids=ids, sample_ids=[i for i in ids if i.startswith("sample/")],
                     objectnet_ids=[i for i in ids if i.startswith("objectnet/")])


@pytest.fixture
def sample_run(sample_home, isolated_home):
    """This test's data home with the sample source, a tiny objectnet source and a fake mining
    run ``sample-run`` of 9 candidates (7 sample photos + 2 objectnet-origin crops)."""
    return make_sample_run(isolated_home, sample_home)


@pytest.fixture
def http_server():
    """A loopback HTTP server (127.0.0.1) with Range support and fault injection; see
    tests/source_archives.py."""
    from source_archives import LoopbackServer

    server = LoopbackServer()
    yield server
    server.close()


class ReviewServerProcess:
    """``imhard review serve --port 0`` in a subprocess; ``url`` is read from its first line."""

    def __init__(self, home):
        import os
        import re
        import subprocess
        import sys

        env = {**os.environ, "PYTHONUNBUFFERED": "1", "IMHARD_HOME": str(home)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imagenet_hard", "review", "serve", "--port", "0",
             "--home", str(home)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        first = self.proc.stdout.readline()  # "" if it exited instead
        match = re.search(r"http://\S+/", first)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"review server did not start: {first}{self.proc.stdout.read()}")
        self.url = match.group(0)

    def stop(self):
        """SIGTERM (a clean stop) and wait; returns what it printed after the first line."""
        if self.proc.poll() is None:
            self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        return out

    def kill(self):
        self.proc.kill()
        self.proc.communicate(timeout=30)


@pytest.fixture
def review_server(sample_run):
    """The sample run imported and served by a separate process (stopped after the test)."""
    from imagenet_hard.review import ReviewStore

    with ReviewStore(sample_run.home) as store:
        store.import_run(sample_run.run)
    server = ReviewServerProcess(sample_run.home)
    yield server
    if server.proc.poll() is None:
        server.stop()
