"""``imhard bench gpu`` on a machine without CUDA: the same table with CPU figures, saying so."""

from __future__ import annotations

import json

import pytest

from imagenet_hard.bench.gpu import (
    Figure,
    GpuReport,
    bench_gpu,
    format_gpu_report,
    write_report,
)
from imagenet_hard.errors import InvalidValueError


def test_cpu_run_says_no_gpu_and_prints_each_figure_with_its_target(tmp_path):
    report = bench_gpu(device="cpu", only=["corrupt"], echo=lambda m: None)
    assert not report.gpu and [f.key for f in report.figures] == ["corrupt"]
    (fig,) = report.figures
    assert fig.measured > 0 and fig.target == 20.0 and fig.ideal is None
    text = format_gpu_report(report)
    assert "no GPU found" in text and "zoom_blur" in text and "H100 target" in text
    path = write_report(report, tmp_path / "r.json")
    assert json.loads(path.read_text())["figures"][0]["key"] == "corrupt"


def test_gpu_table_puts_the_ideal_beside_each_figure():
    report = GpuReport("cuda:0", "NVIDIA H100 80GB HBM3", True,
                       {"bf16": 989.0, "fp32": 67.0, "source": "data sheet"},
                       (Figure("mine", "exhaustive mining", "crops/s", 2600.0, 6105.0, 2500.0,
                               "how"),))
    text = format_gpu_report(report)
    assert "bench gpu on cuda:0 (NVIDIA H100 80GB HBM3)" in text and "no GPU" not in text
    row = next(line for line in text.splitlines() if line.startswith("exhaustive mining"))
    assert row.split()[2:5] == ["2600.0", "6105.0", "2500"]


def test_unknown_figure_is_refused():
    with pytest.raises(InvalidValueError, match="early-exit"):
        bench_gpu(device="cpu", only=["nope"])


def test_gpu_check_without_cuda_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    import torch

    from imagenet_hard.bench.gpu import gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    lines = []
    assert gpu_check(tmp_path / "report.json", echo=lines.append) == 0
    assert len(lines) == 1 and "no CUDA device" in lines[0]
    assert not (tmp_path / "report.json").exists()
