"""``bench_mine``: the paper's mining procedure against this engine, same images, same judge.

The reference is the procedure of the paper's appendix A.1 as its code reads: for every image, one
image at a time, each of the 324 transforms is a ``Resize(S, bicubic)`` of the whole image followed
by ``crop_at`` and ``ToTensor`` (float crops, :func:`imagenet_hard.benchmarks.reference_zoom_crops`),
normalised and judged in batches, exhaustively.
The engine is :func:`~imagenet_hard.mining.mine` on the same images (a temporary source), timed
exhaustive (the same 324 crops, the like-for-like ratio) and with early exit (the default). Both
apply the same label-space verdict, and the report says whether their candidates agree.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import home as homes
from ..errors import InvalidValueError
from ..records import SourceRow, read_table, table_label_spaces, write_source_table

#: Dense bf16 tensor-core peak (TFLOPS) by device-name fragment, most specific first.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0),
    ("GH200", 989.0), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0),
    ("A10", 125.0),
)
BENCH_SOURCE = "bench_mine"


@dataclass
class BenchMineReport:
    judge: str
    device: str
    images: int
    reference_seconds: float
    exhaustive_seconds: float
    early_seconds: float
    early_forward_per_image: float
    candidates_agree: bool
    candidates: int
    flops_per_image: float | None = None
    peak_tflops: float | None = None
    device_name: str = ""
    notes: list[str] = field(default_factory=list)

    def rate(self, seconds: float) -> float:
        return self.images / seconds if seconds > 0 else float("inf")

    @property
    def exhaustive_ratio(self) -> float:
        return self.rate(self.exhaustive_seconds) / self.rate(self.reference_seconds)

    @property
    def early_ratio(self) -> float:
        return self.rate(self.early_seconds) / self.rate(self.reference_seconds)

    @property
    def exhaustive_crops_per_s(self) -> float:
        return 324 * self.rate(self.exhaustive_seconds)

    @property
    def peak_fraction(self) -> float | None:
        if not (self.flops_per_image and self.peak_tflops):
            return None
        return self.exhaustive_crops_per_s * self.flops_per_image / (self.peak_tflops * 1e12)

    def summary(self) -> str:
        lines = [
            f"judge {self.judge} on {self.device} {self.device_name}".rstrip() +
            f", {self.images} images",
            f"reference (re-resize per anchor, float crops, one image at a time, exhaustive): "
            f"{self.rate(self.reference_seconds):.3f} images/s",
            f"engine, exhaustive:  {self.rate(self.exhaustive_seconds):.3f} images/s  "
            f"({self.exhaustive_ratio:.2f}x the reference)",
            f"engine, early exit:  {self.rate(self.early_seconds):.3f} images/s  "
            f"({self.early_ratio:.2f}x the reference), {self.early_forward_per_image:.1f} forward "
            f"passes per image (of 324)",
            f"candidates: {self.candidates}; reference and engine agree: "
            f"{'yes' if self.candidates_agree else 'NO'}",
        ]
        if self.device.startswith("cuda"):
            lines.append(f"engine exhaustive: {self.exhaustive_crops_per_s:.0f} crops/s")
            frac = self.peak_fraction
            if frac is not None:
                lines.append(f"judge FLOPs {self.flops_per_image / 1e9:.1f} GFLOP/crop → "
                             f"{100 * frac:.1f}% of {self.peak_tflops:.0f} TFLOPS bf16 dense peak")
            else:
                lines.append("fraction of peak: unknown device peak; pass --peak-tflops")
        lines.extend(self.notes)
        return "\n".join(lines)


def _judge_float(judge, crops: torch.Tensor) -> torch.Tensor:
    """Judge float [0, 1] crops: normalise and forward like the reference, when the judge allows."""
    forward, mean, std = (getattr(judge, a, None) for a in ("forward", "mean", "std"))
    if forward is None or mean is None or std is None:
        return judge((crops * 255).round_().to(torch.uint8))
    import torchvision.transforms.functional as fv

    dtype = getattr(judge, "amp_dtype", None)
    x = fv.normalize(crops.to(judge.device), mean, std)
    with torch.inference_mode(), torch.autocast(judge.device.type, dtype=dtype,
                                                enabled=dtype is not None):
        return forward(x).float()


def reference_mine(rows: list[SourceRow], home: Path, judge, spaces: dict, batch_size: int) -> set:
    """Candidates by the reference procedure (exhaustive, one image at a time)."""
    from PIL import Image

    from ..benchmarks import reference_zoom_crops
    from ..labels import NUM_CLASSES
    from .engine import judge_verdicts

    names = sorted(spaces)
    masks = torch.zeros((len(names), NUM_CLASSES), dtype=torch.bool)
    for k, name in enumerate(names):
        masks[k, list(spaces[name])] = True
    candidates = set()
    for row in rows:
        with Image.open(home / row.path) as image:
            crops = reference_zoom_crops(image)
        hot = torch.zeros((1, NUM_CLASSES), dtype=torch.bool)
        hot[0, row.label] = True
        solved = False
        for start in range(0, crops.shape[0], batch_size):
            logits = _judge_float(judge, crops[start:start + batch_size]).cpu()
            n = logits.shape[0]
            space = torch.full((n,), names.index(row.label_space), dtype=torch.long)
            correct = judge_verdicts(logits, space, masks, hot.expand(n, -1))[0]
            solved |= bool(correct.any())
        if not solved:
            candidates.add(row.id)
    return candidates


def _bench_rows(source: str | None, images: int, home, tmp: Path):
    """Rows to time and their label spaces, copied into ``tmp`` as the source ``bench_mine``."""
    if source is None:
        from ..sources import build_source

        table_path = build_source("sample", home=tmp / "src")
        src_home = tmp / "src"
    else:
        table_path = homes.source_table_path(source, home)
        src_home = homes.data_home(home)
    table = read_table(table_path, what=f"source table {source or 'sample'!r}")
    spaces = table_label_spaces(table)
    rows = [SourceRow(**r) for r in table.to_pylist()[:images]]
    if not rows:
        raise InvalidValueError(f"source {source!r} has no images to time")
    work = tmp / "work"
    for r in rows:
        dest = work / r.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_home / r.path, dest)
    write_source_table(rows, work / "sources" / f"{BENCH_SOURCE}.parquet", BENCH_SOURCE, spaces)
    return rows, spaces, work


def _warm_up(judge, path: Path) -> None:
    """One forward pass on a real crop first, so neither timing pays for lazy initialisation."""
    from PIL import Image

    from ..zoom import STANDARD_CROP_INDEX, zoom_crops

    with Image.open(path) as im:
        judge(zoom_crops(im, [STANDARD_CROP_INDEX]))


def _peak(device: torch.device, peak_tflops: float | None) -> tuple[str, float | None]:
    if device.type != "cuda":
        return "", None
    name = torch.cuda.get_device_name(device)
    if peak_tflops:
        return name, float(peak_tflops)
    return name, next((p for frag, p in PEAK_BF16_TFLOPS if frag in name), None)


def make_bench_judge(spec, device):
    """A judge from a spec; ``random-clip:ARCH`` is open_clip ARCH with random weights (the same
    FLOPs as the trained model, for timing where weights cannot be downloaded)."""
    if not isinstance(spec, str):
        return spec
    from ..judges import create_judge

    if spec.startswith("random-clip:"):
        import open_clip

        from ..judges.clip import ClipJudge

        arch = spec.partition(":")[2]
        model = open_clip.create_model(arch, pretrained=None)
        return ClipJudge(spec, model, open_clip.get_tokenizer(arch), device=device)
    return create_judge(spec, device)


def bench_mine(judge="efficientnet-lite0", images: int = 4, source: str | None = None, home=None,
               device=None, batch_size: int = 128, workers: int | None = None,
               peak_tflops: float | None = None, echo=print) -> BenchMineReport:
    """Time the reference procedure and the engine on the same ``images`` (default: the sample
    source) with the same judge; see :class:`BenchMineReport`."""
    from . import mine
    from .distributed import resolve_device

    dev = resolve_device(device)
    judge = make_bench_judge(judge, dev)
    with tempfile.TemporaryDirectory(prefix="imhard-bench-mine-") as tmp:
        rows, spaces, work = _bench_rows(source, images, home, Path(tmp))
        all_spaces = {r.label_space for r in rows}
        from ..labels import label_space_indices

        space_idx = {s: label_space_indices(s, spaces) for s in all_spaces}
        _warm_up(judge, work / rows[0].path)
        echo(f"timing the reference procedure on {len(rows)} images …")
        t = time.perf_counter()
        ref = reference_mine(rows, work, judge, space_idx, batch_size)
        ref_s = time.perf_counter() - t
        runs = {}
        for exhaustive in (True, False):
            echo(f"timing the engine ({'exhaustive' if exhaustive else 'early exit'}) …")
            t = time.perf_counter()
            res = mine([BENCH_SOURCE], judge, home=work, exhaustive=exhaustive, device=dev,
                       batch_size=batch_size, workers=workers, run=f"bench-{exhaustive}")
            runs[exhaustive] = (res, time.perf_counter() - t)
        got = set(runs[True][0].candidates().column("id").to_pylist())
        got_early = set(runs[False][0].candidates().column("id").to_pylist())
        early = runs[False][0].summary
    name, peak = _peak(dev, peak_tflops)
    return BenchMineReport(
        judge=str(judge.name), device=str(dev), images=len(rows), reference_seconds=ref_s,
        exhaustive_seconds=runs[True][1], early_seconds=runs[False][1],
        early_forward_per_image=early.forward_passes_per_image,
        candidates_agree=got == ref == got_early, candidates=len(got),
        flops_per_image=getattr(judge, "flops_per_image", None), peak_tflops=peak,
        device_name=name,
    )
