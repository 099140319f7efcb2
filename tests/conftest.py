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
from review_support import ReviewServerProcess, make_sample_run


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


# -- a fake mining run over the sample source (review, publish): tests/review_support.py --


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
