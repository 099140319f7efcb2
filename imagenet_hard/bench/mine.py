"""``imhard bench mine``: the paper's mining procedure against this engine, same images and judge.

The reference is the procedure of the paper's appendix A.1 as its code reads: for every image, one
image at a time, each of the 324 transforms is a ``Resize(S, bicubic)`` of the whole image followed
by ``crop_at`` and ``ToTensor`` (float crops, :func:`imagenet_hard.zoom.reference_crops`),
normalised and judged in batches, exhaustively.
The engine is :func:`~imagenet_hard.mining.mine` on the same images (a temporary source), timed
exhaustive (the same 324 crops, the like-for-like ratio) and with early exit (the default). Both
use one judge built under one mining protocol (normalisation, precision, ObjectNet rule: the
report's config names it) and the same label-space verdict; the report says whether their
candidates agree.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import catalog
from .. import home as homes
from ..errors import InvalidValueError
from ..jobs import resolve_device
from ..label_rules import objectnet_rule
from ..labels import NUM_CLASSES, label_space_indices
from ..mining import mine
from ..mining.run import check_protocol, default_batch_size, resolve_protocol
from ..mining_protocol import MiningProtocol
from ..pixels import open_image
from ..records import SourceRow, read_table, table_label_spaces, write_source_table
from ..zoom import STANDARD_CROP_INDEX, reference_crops, zoom_crops
from .report import BenchReport, Timing

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Dense bf16 tensor-core peak (TFLOPS) by device-name fragment, most specific first.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0),
    ("GH200", 989.0), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0),
    ("A10", 125.0),
)
BENCH_SOURCE = "bench_mine"


def _judge_float(judge, crops: torch.Tensor) -> torch.Tensor:
    """Judge float [0, 1] crops: normalise and forward like the reference, when the judge allows."""
    import torch

    forward, mean, std = (getattr(judge, a, None) for a in ("forward", "mean", "std"))
    if forward is None or mean is None or std is None:
        return judge((crops * 255).round_().to(torch.uint8))
    import torchvision.transforms.functional as fv

    dtype = getattr(judge, "amp_dtype", None)
    x = fv.normalize(crops.to(judge.device), mean, std)
    with torch.inference_mode(), torch.autocast(judge.device.type, dtype=dtype,
                                                enabled=dtype is not None):
        return forward(x).float()


def reference_mine(rows: list[SourceRow], home: Path, judge, spaces: dict, batch_size: int,
                   objectnet_labels: str = "paper") -> set:
    """Candidates by the reference procedure (exhaustive, one image at a time); ``spaces`` holds
    the label spaces the rows are judged in under ``objectnet_labels``."""
    import torch

    from ..mining.engine import judge_verdicts

    names = sorted(spaces)
    masks = torch.zeros((len(names), NUM_CLASSES), dtype=torch.bool)
    for k, name in enumerate(names):
        masks[k, list(spaces[name])] = True
    candidates = set()
    for row in rows:
        judged = objectnet_rule(row, objectnet_labels)
        crops = reference_crops(open_image(home / row.path))
        hot = torch.zeros((1, NUM_CLASSES), dtype=torch.bool)
        hot[0, list(judged.label)] = True
        solved = False
        for start in range(0, crops.shape[0], batch_size):
            logits = _judge_float(judge, crops[start:start + batch_size]).cpu()
            n = logits.shape[0]
            space = torch.full((n,), names.index(judged.label_space), dtype=torch.long)
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
        table_path = catalog.parse(source).path(home)
        src_home = homes.data_home(home)
    table = read_table(table_path, what=f"source table {source or 'sample'!r}")
    spaces = table_label_spaces(table)
    rows = [SourceRow(**r) for r in table.to_pylist()[:images]]
    if not rows:
        raise InvalidValueError(f"source {source!r} has no images to time")
    work = tmp / "work"
    for r in rows:
        src = homes.inside_home(src_home, r.path, f"source table {source or 'sample'!r} row "
                                f"{r.id!r}")
        dest = work / src.relative_to(src_home)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    write_source_table(rows, work / "sources" / f"{BENCH_SOURCE}.parquet", BENCH_SOURCE, spaces)
    return rows, spaces, work


def _warm_up(judge, path: Path) -> None:
    """One forward pass on a real crop first, so neither timing pays for lazy initialisation."""
    judge(zoom_crops(open_image(path), [STANDARD_CROP_INDEX]))


def _peak(device: torch.device, peak_tflops: float | None) -> tuple[str, float | None]:
    import torch

    if device.type != "cuda":
        return "", None
    name = torch.cuda.get_device_name(device)
    if peak_tflops:
        return name, float(peak_tflops)
    return name, next((p for frag, p in PEAK_BF16_TFLOPS if frag in name), None)


def make_bench_judge(spec, device, protocol: MiningProtocol):
    """A judge from a spec under ``protocol`` (``open_clip:ARCH/random`` times ARCH without its
    weights); a built judge as it is."""
    if not isinstance(spec, str):
        return spec
    from ..mining.run import build_judge

    return build_judge(spec, device, protocol)


def steady_exhaustive(judge, dev, work: Path, batch_size: int, workers: int | None,
                      objectnet_labels: str, crops: str = "pil") -> Timing:
    """The engine's exhaustive judging of the bench source with start-up excluded: the judge is
    built and warm, and one untimed pass over the images first starts the loader workers and
    fills the caches; the timed pass counts its own forward passes (crops, 1-crop included)."""
    from ..mining.engine import ShardMiner
    from ..mining.plan import load_workload

    wl = load_workload([BENCH_SOURCE], work, objectnet_labels)
    miner = ShardMiner(judge, wl.spaces, wl.home, dev, exhaustive=True, batch_size=batch_size,
                       workers=workers, crops=crops)
    passes, seconds = steady_pass(miner, wl.images)
    return Timing("imhard mine's engine, exhaustive, start-up excluded", passes, seconds)


def steady_pass(miner, images) -> tuple[int, float]:
    """(forward passes, seconds) of ``miner`` over ``images`` after one untimed pass that starts
    the loader workers, first decodes and the allocator; closes the miner."""
    try:
        miner.mine_shard(images)
        before = miner.forward_passes
        t = time.perf_counter()
        miner.mine_shard(images)
        return miner.forward_passes - before, time.perf_counter() - t
    finally:
        miner.close()


def _gpu_results(judge, dev, steady: Timing, peak_tflops) -> tuple[dict, tuple[str, ...]]:
    """On CUDA: the engine's steady crops/s and, from the judge's FLOPs, its fraction of the bf16
    peak (model FLOPs utilisation, start-up excluded: :func:`steady_exhaustive`)."""
    if dev.type != "cuda":
        return {}, ()
    name, peak = _peak(dev, peak_tflops)
    crops_per_s = steady.rate
    results = {"GPU": name, "engine exhaustive crops/s (start-up excluded)": round(crops_per_s)}
    flops = getattr(judge, "flops_per_image", None)
    if not (flops and peak):
        return results, ("fraction of peak: unknown device peak or judge FLOPs; pass "
                         "--peak-tflops",)
    results[f"fraction of {peak:.0f} TFLOPS bf16 dense peak ({flops / 1e9:.1f} GFLOP/crop)"] = (
        round(crops_per_s * flops / (peak * 1e12), 4))
    return results, ()


def bench_mine(judge="efficientnet-lite0", images: int = 4, source: str | None = None, home=None,
               device=None, batch_size: int | None = None, workers: int | None = None,
               peak_tflops: float | None = None, echo=print, protocol: str | None = None,
               normalization: str | None = None, precision: str | None = None,
               objectnet_labels: str | None = None, compile: bool = False) -> BenchReport:
    """Time the reference procedure and the engine (exhaustive, the like-for-like ratio, and with
    early exit) on the same ``images`` (default: the sample source) with the same judge, built
    under the mining ``protocol`` and knobs (as ``mine`` takes them). ``compile``: the judge
    through ``torch.compile`` for all of them (``imhard mine --compile``); compiling happens in
    the warm-up and, for each new batch shape, inside the timings except the steady pass's."""
    check_protocol(judge, protocol, normalization, precision, objectnet_labels)
    dev = resolve_device(device)
    batch_size = batch_size or default_batch_size(dev)   # as `imhard mine` would judge
    proto = resolve_protocol(judge, dev.type, protocol, normalization, precision,
                             objectnet_labels)
    judge = make_bench_judge(judge, dev, proto)
    if compile:
        from ..mining.run import compile_judge

        compile_judge(judge)
    with tempfile.TemporaryDirectory(prefix="imhard-bench-mine-") as tmp:
        rows, spaces, work = _bench_rows(source, images, home, Path(tmp))
        judged = {objectnet_rule(r, proto.objectnet_labels).label_space for r in rows}
        space_idx = {s: label_space_indices(s, spaces) for s in judged}
        _warm_up(judge, work / rows[0].path)
        echo(f"timing the reference procedure on {len(rows)} images …")
        t = time.perf_counter()
        ref = reference_mine(rows, work, judge, space_idx, batch_size, proto.objectnet_labels)
        ref_s = time.perf_counter() - t
        runs = {}
        for exhaustive in (True, False):
            echo(f"timing the engine ({'exhaustive' if exhaustive else 'early exit'}) …")
            t = time.perf_counter()
            run = mine([BENCH_SOURCE], judge, home=work, exhaustive=exhaustive, device=dev,
                       batch_size=batch_size, workers=workers, run=f"bench-{exhaustive}",
                       protocol=proto.name, objectnet_labels=proto.objectnet_labels,
                       compile=compile)
            runs[exhaustive] = (run, time.perf_counter() - t)
        found = {k: set(r.candidates().column("id").to_pylist()) for k, (r, _) in runs.items()}
        early = runs[False][0].summary
        steady = steady_exhaustive(judge, dev, work, batch_size, workers,
                                   proto.objectnet_labels) if dev.type == "cuda" else None
    n = len(rows)
    ours = Timing("imhard mine, exhaustive (the same 324 crops + the 1-crop baseline)", n, runs[True][1])
    gpu, notes = _gpu_results(judge, dev, steady, peak_tflops)
    return BenchReport(
        name="mine", unit="images",
        subject=f"the paper's mining procedure against imhard mine, judge {judge.name}",
        reference=Timing("paper: re-resize per anchor, float, one image at a time", n, ref_s),
        ours=ours,
        variants=(Timing("imhard mine, early exit", n, runs[False][1]),),
        config={"judge": str(judge.name), "device": str(dev), "images": n,
                "batch size": batch_size, "protocol": early.protocol.describe(),
                "torch.compile": bool(compile)},
        results={"candidates": len(found[True]),
                 "reference and engine agree on candidates": found[True] == ref == found[False],
                 "early exit forward passes per image (of 324)": early.forward_passes_per_image,
                 **gpu},
        notes=notes,
    )
