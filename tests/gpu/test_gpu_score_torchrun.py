"""CUDA against the CPU end to end: scoring a submission in the sandbox (GPU nodes bound, under a
memory limit), TTA, and a 2-rank torchrun mining run on one GPU against one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from imagenet_hard.score import RunOptions, score
from imagenet_hard.score.examples import write_example_submission
from imagenet_hard.score.sets import folder_from_source
from imagenet_hard.sources import build_source


def _data(tmp_path: Path):
    home = tmp_path / "home"
    table = build_source("sample", home=home)
    return home, folder_from_source(table, tmp_path / "data", home=home, repeat=2)


def _top1(run) -> list:
    import pyarrow.parquet as pq

    return pq.read_table(run.predictions).column("top5").to_pylist()


def test_scoring_in_the_sandbox_on_cuda_equals_the_cpu(tmp_path):
    home, data = _data(tmp_path)
    sub = write_example_submission(tmp_path / "lite0.py")
    runs = {}
    for device, limit in (("cpu", None), ("cuda", 8 << 30)):
        opts = RunOptions(device=device, batch_size=16, memory_limit=limit)
        runs[device] = score(sub, dataset=data, home=home, out=tmp_path / f"{device}.json",
                             options=opts)
    assert runs["cuda"].result.environment["device"].startswith("cuda")
    a, b = _top1(runs["cpu"]), _top1(runs["cuda"])
    assert [r[0] for r in a] == [r[0] for r in b]
    assert runs["cpu"].result.metrics["accuracy"] == runs["cuda"].result.metrics["accuracy"]


def test_tta_on_cuda_equals_the_cpu(tmp_path):
    from imagenet_hard.score.tta import get_mode

    home, data = _data(tmp_path)
    sub = write_example_submission(tmp_path / "lite0.py")
    runs = {}
    for device in ("cpu", "cuda"):
        opts = RunOptions(device=device, batch_size=16)
        runs[device] = score(sub, dataset=data, home=home, out=tmp_path / f"tta-{device}.json",
                             options=opts, tta=get_mode("zoom-224-mean"))
    assert [r[0] for r in _top1(runs["cpu"])] == [r[0] for r in _top1(runs["cuda"])]


def test_two_rank_torchrun_on_one_gpu_equals_one_process(tmp_path):
    home = tmp_path / "home"
    build_source("sample", home=home)
    args = ["mine", "--source", "sample", "--judge", "efficientnet-lite0", "--precision", "fp32",
            "--shard-size", "2", "--device", "cuda", "--home", str(home)]
    one = subprocess.run([sys.executable, "-m", "imagenet_hard", *args, "--run-name", "one"],
                         capture_output=True, text=True, timeout=900)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                          "--master-port", "29533", "-m", "imagenet_hard", *args, "--run-name", "two"],
                         capture_output=True, text=True, timeout=900,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert two.returncode == 0, two.stderr[-3000:]
    from imagenet_hard.mining import open_run

    a = {r["id"]: r["correct"] for r in open_run("one", home).results().to_pylist()}
    b = {r["id"]: r["correct"] for r in open_run("two", home).results().to_pylist()}
    assert a == b and open_run("two", home).summary.world_size == 2
