"""``imhard bench gpu``: issue 23's throughput targets, measured on the device found, each figure
beside its ideal.

Figures (``FIGURES``): exhaustive mining crops/s with CLIP ViT-L/14 (random weights: the trained
model's FLOPs; start-up excluded, :func:`imagenet_hard.bench.mine.steady_exhaustive`); mining
images/s with early exit on ImageNet-A-sized photos (random weights settle nothing, so this is
early exit's worst case: every crop judged); scoring a ResNet-50 model+transform submission end to
end (decode, transform, sandboxed child; random weights); the ImageNet-C torch backend against the
reference on zoom_blur at 2000×1500.

The ideal of a FLOP-bound figure is the device's peak (bf16 dense for mining, which runs under
bf16 autocast on CUDA; fp32 for scoring, which runs fp32 with TF32 off) over the work per item;
the peak comes from a table of data-sheet figures by GPU name, or, where the name is not in it
and on the CPU, from a matrix product timed here (said so in the report). Without CUDA the same
table is printed with CPU figures at tiny sizes (one image, a small judge), and says so.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InvalidValueError
from .mine import PEAK_BF16_TFLOPS

#: Dense fp32 (no tensor cores) data-sheet peaks by GPU-name fragment, most specific first.
PEAK_FP32_TFLOPS = (
    ("H100 PCIe", 51.0), ("H100 NVL", 60.0), ("H100", 67.0), ("H200", 67.0), ("GH200", 67.0),
    ("B200", 80.0), ("A100", 19.5), ("L40S", 91.6), ("L4", 30.3), ("A10", 31.2),
)
FIGURES = ("mine", "early-exit", "score", "corrupt")
#: Issue 23's targets on one H100.
TARGETS = {"mine": 2500.0, "early-exit": 100.0, "score": 3000.0, "corrupt": 20.0}
#: What each figure runs, on a GPU and (tiny, for a CPU) without one.
SIZES = {
    "cuda": {"judge": "open_clip:ViT-L-14/random", "images": 8, "early_images": 16,
             "photo": (500, 375), "batch": 256, "score_images": 2048, "score_model": "resnet50",
             "score_batch": 256, "score_workers": None, "corrupt_size": (2000, 1500)},
    "cpu": {"judge": "efficientnet-lite0", "images": 1, "early_images": 1, "photo": (160, 120),
            "batch": 128, "score_images": 8, "score_model": "resnet50", "score_batch": 8,
            "score_workers": None, "corrupt_size": (200, 150)},
}
#: FLOPs of one 224×224 forward pass of the scored model (2 per multiply-add).
RESNET50_FLOPS = 8.18e9


@dataclass(frozen=True)
class Figure:
    """One measured figure, its ideal on this device (None: not FLOP-bound), the issue's target
    for one H100, and how it was measured."""

    key: str
    label: str
    unit: str
    measured: float
    ideal: float | None
    target: float | None
    how: str


@dataclass(frozen=True)
class GpuReport:
    device: str
    device_name: str
    gpu: bool
    peaks: dict
    figures: tuple[Figure, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {**asdict(self), "figures": [asdict(f) for f in self.figures]}


def format_gpu_report(r: GpuReport) -> str:
    """The table ``imhard bench gpu`` prints: each figure, its ideal here and the H100 target."""
    head = (f"bench gpu on {r.device} ({r.device_name})" if r.gpu else
            f"bench gpu: no GPU found (torch sees no CUDA device); CPU figures on {r.device_name}, "
            "tiny sizes")
    lines = [head, "peaks:     " + ", ".join(f"{k} {v}" for k, v in r.peaks.items())]
    width = max(len(f.label) for f in r.figures) if r.figures else 0
    lines.append(f"{'figure':<{width}}  {'measured':>12}  {'ideal here':>12}  {'H100 target':>12}")
    for f in r.figures:
        ideal = f"{f.ideal:12.1f}" if f.ideal is not None else f"{'-':>12}"
        target = f"{f.target:12g}" if f.target is not None else f"{'-':>12}"
        lines.append(f"{f.label:<{width}}  {f.measured:12.1f}  {ideal}  {target}  {f.unit}")
    lines += [f"  {f.key}: {f.how}" for f in r.figures]
    lines += list(r.notes)
    return "\n".join(lines)


def matmul_tflops(device, dtype_name: str = "fp32", size: int = 1024, repeat: int = 3) -> float:
    """The best rate of a ``size``² matrix product on ``device``, in TFLOP/s (TF32 off)."""
    import torch

    from ..devices import strict_fp32

    strict_fp32(device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn((size, size), device=device).to(dtype)
    b = torch.randn((size, size), device=device).to(dtype)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        sync()
        best = min(best, (time.perf_counter() - t) / 4)
    return 2 * size ** 3 / best / 1e12


def _peaks(dev) -> tuple[str, dict]:
    """(device name, {"bf16": TFLOP/s, "fp32": TFLOP/s, "source": …})."""
    import platform

    import torch

    if dev.type != "cuda":
        fp32 = matmul_tflops(dev, "fp32", 512)
        return (platform.processor() or platform.machine(),
                {"bf16": round(fp32, 4), "fp32": round(fp32, 4),
                 "source": "a 512² fp32 matrix product timed here (bf16: the same)"})
    name = torch.cuda.get_device_name(dev)
    bf16 = next((p for frag, p in PEAK_BF16_TFLOPS if frag in name), None)
    fp32 = next((p for frag, p in PEAK_FP32_TFLOPS if frag in name), None)
    source = "data sheet"
    if bf16 is None or fp32 is None:
        bf16 = bf16 or round(matmul_tflops(dev, "bf16", 8192), 1)
        fp32 = fp32 or round(matmul_tflops(dev, "fp32", 8192), 1)
        source = "an 8192² matrix product timed here (name not in the table)"
    return name, {"bf16": bf16, "fp32": fp32, "source": source}


def _photos(folder: Path, n: int, size: tuple[int, int], source: str):
    """``n`` noise photos of ``size`` written as the source ``source`` under ``folder``."""
    import hashlib

    import numpy as np
    from PIL import Image

    from ..labels import english_labels
    from ..records import SourceRow, make_id, write_source_table

    rows = []
    rng = np.random.default_rng(0)
    for k in range(n):
        rel = Path("sources") / source / f"photo{k}.jpg"
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        w, h = size
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(dest, quality=90)
        rows.append(SourceRow(id=make_id(source, rel.name), origin=source, path=str(rel),
                              label=[k % 1000], english_label=english_labels([k % 1000]),
                              label_space="in1k", width=w, height=h,
                              sha256=hashlib.sha256(dest.read_bytes()).hexdigest()))
    write_source_table(rows, folder / "sources" / f"{source}.parquet", source)


def _mining(dev, size: dict, peaks: dict, keys, echo) -> list[Figure]:
    from ..mining.engine import ShardMiner
    from ..mining.plan import load_workload
    from ..mining.run import resolve_protocol
    from .mine import BENCH_SOURCE, make_bench_judge, steady_exhaustive, steady_pass

    proto = resolve_protocol(size["judge"], dev.type)
    echo(f"building the judge {size['judge']} …")
    judge = make_bench_judge(size["judge"], dev, proto)
    flops = float(getattr(judge, "flops_per_image", 0) or 0)
    ideal_crops = peaks["bf16" if dev.type == "cuda" else "fp32"] * 1e12 / flops if flops else None
    out = []
    with tempfile.TemporaryDirectory(prefix="imhard-bench-gpu-") as tmp:
        work = Path(tmp)
        if "mine" in keys:
            _photos(work, size["images"], size["photo"], BENCH_SOURCE)
            echo(f"exhaustive mining, {size['images']} images …")
            steady = steady_exhaustive(judge, dev, work, size["batch"], None, "paper")
            out.append(Figure("mine", f"exhaustive mining ({judge.name})", "crops/s",
                              steady.rate, ideal_crops, TARGETS["mine"],
                              f"{steady.items} crops in {steady.seconds:.2f} s after a warm pass; "
                              f"{flops / 1e9:.1f} GFLOP/crop; {proto.describe()}"))
        if "early-exit" in keys:
            _photos(work, size["early_images"], size["photo"], "bench_early")
            wl = load_workload(["bench_early"], work, "paper")
            miner = ShardMiner(judge, wl.spaces, wl.home, dev, batch_size=size["batch"])
            echo(f"early-exit mining, {size['early_images']} images …")
            passes, seconds = steady_pass(miner, wl.images)
            n = len(wl.images)
            per_image = passes / n
            out.append(Figure("early-exit", "early-exit mining, ImageNet-A-sized photos",
                              "images/s", n / seconds,
                              ideal_crops / per_image if ideal_crops else None,
                              TARGETS["early-exit"],
                              f"{per_image:.0f} forward passes per image ({size['photo'][0]}×"
                              f"{size['photo'][1]} noise photos: random weights settle none, "
                              "so this is early exit's worst case)"))
    return out


SUBMISSION = '''"""ResNet-50 with random weights: the FLOPs of the real one, for timing (imhard bench gpu)."""
import torchvision
from torchvision import transforms as T

METADATA = {"name": "ResNet-50 (random weights, timing)", "uses_tta": False,
            "extra_training_data": False, "seed": 0}
model = torchvision.models.{arch}()
transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                       T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
'''


def _scoring(dev, size: dict, peaks: dict, echo) -> Figure:
    import math

    from ..score import RunOptions, score
    from ..score.sets import folder_from_source
    from ..sources import build_source

    n = size["score_images"]
    with tempfile.TemporaryDirectory(prefix="imhard-bench-gpu-") as tmp:
        home = Path(tmp) / "home"
        table = build_source("sample", home=home)
        data = folder_from_source(table, Path(tmp) / "data", home=home, repeat=math.ceil(n / 9))
        sub = Path(tmp) / "resnet50_random.py"
        sub.write_text(SUBMISSION.replace("{arch}", size["score_model"]))
        echo(f"scoring {n} images with a ResNet-50 model+transform submission …")
        # workers: the device's own default (devices.scoring_loader: CPUs-1, at most 16)
        opts = RunOptions(device=str(dev), batch_size=size["score_batch"],
                          workers=size["score_workers"])
        run = score(sub, dataset=data, limit=n, home=home, out=Path(tmp) / "r.json",
                    options=opts)
    rate = float(run.result.metrics["images_per_s"])
    return Figure("score", "scoring, ResNet-50 model+transform", "images/s", rate,
                  peaks["fp32"] * 1e12 / RESNET50_FLOPS, TARGETS["score"],
                  f"{n} sample photos end to end (decode, transform, sandboxed child, fp32 with "
                  f"TF32 off, {opts.resolved_workers()} loader workers, batch "
                  f"{size['score_batch']}; ideal: fp32 peak / {RESNET50_FLOPS / 1e9:.2f} GFLOP)")


def _corrupt(dev, size: dict, echo) -> Figure:
    from .corrupt import bench_corrupt, photo

    w, h = size["corrupt_size"]
    echo(f"ImageNet-C zoom_blur at {w}×{h}, both backends …")
    report = bench_corrupt(image=photo(size=(w, h)), names=["zoom_blur"], repeat=1,
                           device=str(dev))
    ratio = report.ours.rate / report.reference.rate
    return Figure("corrupt", f"ImageNet-C zoom_blur {w}×{h}, torch / reference", "x", ratio,
                  None, TARGETS["corrupt"],
                  f"reference {report.reference.seconds:.2f} s, torch {report.ours.seconds:.3f} s "
                  "per image (severity 5)")


def bench_gpu(device=None, only: Sequence[str] | None = None,
              echo: Callable[[str], None] = print) -> GpuReport:
    """Measure the figures ``only`` names (default: all of :data:`FIGURES`) on ``device``
    (default: CUDA when torch sees it, else the CPU at tiny sizes)."""
    keys = tuple(FIGURES if not only else only)
    bad = [k for k in keys if k not in FIGURES]
    if bad:
        raise InvalidValueError(f"unknown figure {bad[0]!r}; choose from {', '.join(FIGURES)}")
    from ..devices import resolve_device

    dev = resolve_device(device)
    size = SIZES["cuda" if dev.type == "cuda" else "cpu"]
    name, peaks = _peaks(dev)
    figures: list[Figure] = []
    if "mine" in keys or "early-exit" in keys:
        figures += _mining(dev, size, peaks, keys, echo)
    if "score" in keys:
        figures.append(_scoring(dev, size, peaks, echo))
    if "corrupt" in keys:
        figures.append(_corrupt(dev, size, echo))
    notes = () if dev.type == "cuda" else (
        "no GPU was found: these are CPU figures at tiny sizes; the H100 targets are for a GPU",)
    return GpuReport(str(dev), name, dev.type == "cuda", peaks, tuple(figures), notes)


def write_report(report: GpuReport, path: str | Path) -> Path:
    """The report as JSON at ``path`` (written atomically)."""
    from ..files import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(report.to_json(), indent=2))
    return path


def gpu_check(report_path: str | Path, repo: str | Path = ".",
              echo: Callable[[str], None] = print) -> int:
    """``make gpu-check``: the ``gpu`` test suite, then :func:`bench_gpu`, in one JSON report at
    ``report_path`` (suite counts and failures, the bench table, versions, seconds). Without a
    CUDA device: one line, nothing written, 0. Returns the exit status (1 if a test failed)."""
    import platform
    import subprocess
    import sys
    import xml.etree.ElementTree as ET

    import torch

    if not torch.cuda.is_available():
        echo("gpu-check: torch sees no CUDA device here; skipped (run it on a GPU machine)")
        return 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imhard-gpu-check-") as tmp:
        junit = Path(tmp) / "junit.xml"
        echo("gpu-check: the gpu test suite …")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-m", "gpu",
                               "-p", "no:cacheprovider", f"--junitxml={junit}", "tests/gpu"],
                              cwd=repo, text=True, capture_output=True)
        echo(proc.stdout[-3000:])
        suite = {"exit_status": proc.returncode, "tests": 0, "failures": 0, "errors": 0,
                 "skipped": 0, "failed": []}
        if junit.is_file():
            root = ET.parse(junit).getroot()
            for ts in root.iter("testsuite"):
                for k in ("tests", "failures", "errors", "skipped"):
                    suite[k] += int(ts.get(k, 0))
            suite["failed"] = [f"{c.get('classname')}::{c.get('name')}: "
                               f"{(c[0].get('message') or '')[:300]}"
                               for c in root.iter("testcase")
                               if len(c) and c[0].tag in ("failure", "error")]
        suite["seconds"] = round(time.perf_counter() - t0, 1)
    echo("gpu-check: imhard bench gpu …")
    t1 = time.perf_counter()
    bench = bench_gpu(echo=echo)
    echo(format_gpu_report(bench))
    report = {"kind": "imhard gpu-check", "device": bench.device_name, "torch": torch.__version__,
              "cuda": torch.version.cuda, "python": platform.python_version(),
              "suite": suite, "bench": bench.to_json(),
              "bench_seconds": round(time.perf_counter() - t1, 1),
              "seconds": round(time.perf_counter() - t0, 1),
              "figures_are": "measured on this GPU"}
    from ..files import atomic_path

    path = Path(report_path)
    with atomic_path(path) as tmp_file:
        Path(tmp_file).write_text(json.dumps(report, indent=2))
    echo(f"gpu-check: wrote {path} ({suite['tests']} tests, {suite['failures']} failures, "
         f"{suite['errors']} errors)")
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":  # make gpu-check
    import sys

    sys.exit(gpu_check(sys.argv[1] if len(sys.argv) > 1 else "gpu-check.json"))
