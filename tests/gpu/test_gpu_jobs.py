"""CUDA paths of the job side: the ImageNet-C torch backend's loader workers forked from a process
that holds a CUDA context, and ``score --suite`` spread over 2 torchrun ranks on one GPU."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import suite_data as sd

from imagenet_hard.score import RunOptions
from imagenet_hard.score.ranks import score_suite
from imagenet_hard.sources import build_derived, build_source


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_imagenet_c_on_cuda_with_loader_workers_equals_in_process(tmp_path):
    homes = [tmp_path / "zero", tmp_path / "two"]
    build_source("sample", home=homes[0])
    shutil.copytree(homes[0] / "sources", homes[1] / "sources", symlinks=True)
    opts = {"base": "sample", "backend": "torch", "device": "cuda", "shard_size": 2, "limit": 4,
            "corruptions": "gaussian_noise,zoom_blur", "severities": "3"}
    for home, workers in zip(homes, (0, 2), strict=True):
        build_derived("imagenet-c", home=home, workers=workers, **opts)

    def files(home):
        root = home / "sources" / "imagenet_c"
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.jpg")}

    assert len(files(homes[0])) == 8 and files(homes[0]) == files(homes[1])


def test_suite_over_two_ranks_on_one_gpu_equals_one_process(tmp_path, isolated_home):
    sd.build_imagenet_a(isolated_home, tmp_path / "src")
    sd.build_objectnet(isolated_home, tmp_path / "src")
    sub = sd.write_submission(tmp_path / "subs")
    fresh = tmp_path / "fresh"  # the one-process run's own caches
    shutil.copytree(isolated_home / "sources", fresh / "sources", symlinks=True)
    args = ["score", str(sub), "--suite", "--batch-size", "2", "-q", "--device", "cuda",
            "--home", str(isolated_home), "--out", str(tmp_path / "two.suite.json")]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", str(_port()), "-m", "imagenet_hard", *args],
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert two.returncode == 0, two.stderr[-3000:]
    one = score_suite(sub, home=fresh, out=tmp_path / "one.suite.json",
                      options=RunOptions(batch_size=2, device="cuda"))
    assert one.predicted == one.scored > 0
    got = json.loads((tmp_path / "two.suite.json").read_text())
    assert [(s["name"], s["metrics"]) for s in got["sets"]] == \
        [(s["name"], s["metrics"]) for s in one.result.sets]
