"""Scoring on CUDA inside the sandbox: the GPU's device nodes are bound in, read-write, by both
tools, and only when the job runs on CUDA. A fake /dev stands in for a GPU machine's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imagenet_hard import sandbox as sb

NODES = ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")


@pytest.fixture
def fake_dev(tmp_path, monkeypatch):
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in NODES:
        (dev / name).write_text("")
    (dev / "nvidia-caps").mkdir()
    (dev / "dri").mkdir()
    (dev / "null").write_text("")
    monkeypatch.setattr(sb, "DEV", str(dev))
    return dev


def test_cuda_jobs_bind_every_nvidia_node_and_dri(fake_dev):
    plan = sb.make_plan([], [], {}, device="cuda:1")
    try:
        gpu = [m for m in plan.mounts if m.role == "gpu"]
        assert {m.dest for m in gpu} == {f"/dev/{n}" for n in (*NODES, "nvidia-caps", "dri")}
        assert all(m.kind == "dev" and Path(m.src).parent == fake_dev for m in gpu)
        argv = sb.bwrap_argv(plan, ["true"])
        binds = {(argv[k + 1], argv[k + 2]) for k, a in enumerate(argv) if a == "--dev-bind"}
        assert binds == {(m.src, m.dest) for m in gpu}
        assert argv.index("--dev") < min(argv.index(m.src) for m in gpu)  # after the new /dev
        spec = json.loads(_jail_spec(plan))
        assert {m["dest"] for m in spec["mounts"] if m["kind"] == "dev"} == {m.dest for m in gpu}
    finally:
        plan.cleanup()


def test_cpu_jobs_and_machines_without_a_gpu_bind_none(fake_dev, tmp_path, monkeypatch):
    plan = sb.make_plan([], [], {}, device="cpu")
    try:
        assert not [m for m in plan.mounts if m.role == "gpu"]
    finally:
        plan.cleanup()
    monkeypatch.setattr(sb, "DEV", str(tmp_path / "empty"))
    plan = sb.make_plan([], [], {}, device="cuda")
    try:
        assert not [m for m in plan.mounts if m.role == "gpu"]
    finally:
        plan.cleanup()


def _jail_spec(plan) -> str:
    sb.unshare_argv(plan, ["true"], map_root=True)
    path = os.path.join(plan.scratch, ".plan.json")
    return Path(path).read_text()


def test_unconfined_scoring_checks_the_hosts_dev_shm_before_the_child(tmp_path, monkeypatch,
                                                                      capsys):
    """--sandbox none: the child's loader workers use the host's /dev/shm (a container's 64 MB),
    and its collate builds each batch there: the child gets the workers whose batches fit, said
    in one line on stderr."""
    from imagenet_hard import devices
    from imagenet_hard.score import RunOptions, harness

    class Small:
        f_bavail, f_frsize = 16, 4 * 1024 * 1024  # 64 MiB free

    class Started(Exception):
        pass

    def child(**kw):
        raise Started(kw["workers"])

    real = os.statvfs
    monkeypatch.setattr(os, "statvfs", lambda p: Small() if p == devices.SHM else real(p))
    monkeypatch.setattr(harness, "ChildJob", child)
    monkeypatch.setattr(harness, "prepare_cache", lambda cache: None)
    monkeypatch.setattr(harness, "read_parts", lambda cache, may: (harness.PartRows([], [], []), 0.0))
    per_worker = 2 * 8 * harness.SHM_PER_LOADER_IMAGE  # two batches of 8 images in flight
    opts = RunOptions(device="cpu", batch_size=8, workers=8, sandbox="none")
    with pytest.raises(Started) as started:
        harness.predict(tmp_path / "sub.py", [_ask(harness, tmp_path)], opts)
    assert started.value.args == ((64 << 20) // per_worker,) == (6,)
    err = capsys.readouterr().err
    assert "/dev/shm has 64 MiB free" in err and "using 6" in err and err.count("\n") == 1


def _ask(harness, tmp_path):
    class Set:
        name = "set"
        classes = None
        ids = ["a", "b"]

        def __len__(self):
            return 2

        class protocol:
            border = 0

        def images(self):
            return [], True

    return harness.Ask(Set(), [0, 1], tmp_path / "cache")
