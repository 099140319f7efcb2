"""Benchmarks of the analyses: ``imhard bench analyze`` (time of a whole analysis, and our greedy
cover against the textbook set-based one) and ``imhard bench order`` (forward passes of early exit
with a learned crop order against the heuristic, on held-out images).

Synthetic masks (:func:`synthetic_masks`) come from a small generative model with the paper's
qualitative shape — accuracy peaks at S ≈ 256–448 and falls faster when zooming out, the centre
anchor beats the edges and the edges the corners, each image's object sits under one anchor, and
ImageNet-A-like images are harder and more centre-biased. They are for timing and for the shape of
the forward-pass comparison, not a stand-in for a judge's real masks.

The real-photo figures mine the offline ``sample`` photos exhaustively with a real judge, and
augmented variants of them (crops, flips, down-scales; seeded), in a scratch data home.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..zoom import GRID, SCALES
from .cover import greedy_cover
from .masks import RunMasks, load_run
from .ordering import OrderComparison, held_out_forward_passes
from .report import write_analysis

SAMPLE_RUN = "bench-order-sample"
VARIANT_SOURCE = "sample_variants"
VARIANT_RUN = "bench-order-variants"


def synthetic_masks(n: int, seed: int = 0, origins: tuple[str, ...] = ("imagenet", "imagenet_a"),
                    peak: float = 320.0) -> RunMasks:
    """(n, 324) masks from the model of the module docstring, origins in equal shares; accuracy
    peaks at scale ``peak`` (a sketch-like judge that needs zooming out: ``peak=96``)."""
    rng = np.random.default_rng(seed)
    which = np.arange(n) % len(origins)
    hard = np.array([o.endswith("_a") for o in origins])[which]
    scales = np.asarray(SCALES, dtype=float)
    scale = np.log(scales / peak)
    falls_fast = (scales < 224) & (peak >= 224)   # zooming out hurts a judge that likes 256+
    scale_term = -1.2 * np.where(falls_fast, 2.0, 1.0) * np.abs(scale)
    ij = np.indices((GRID, GRID)).reshape(2, -1).T
    off = np.abs(ij - 1).sum(axis=1)                                  # 0 centre, 1 edge, 2 corner
    bias = np.where(hard, 1.0, 0.5)[:, None] * off[None, :]          # (n, 9)
    obj = np.where(rng.random(n) < 0.6, 4, rng.integers(0, 9, n))     # the object's anchor
    at_obj = (np.arange(9)[None, :] == obj[:, None]).astype(float)
    image = rng.normal(np.where(hard, -1.5, 1.0), 1.4)               # difficulty per image
    logit = (image[:, None, None] + scale_term[None, :, None]
             + (1.5 * at_obj - bias)[:, None, :]
             + rng.normal(0, 1.0, (n, len(SCALES), 9)))
    correct = (logit > 1.5).reshape(n, len(SCALES) * 9)
    names = np.asarray(origins, dtype=object)[which]
    return RunMasks(correct, names, tuple(f"synthetic/{k:06d}" for k in range(n)),
                    rng.random(n) < 1 / (1 + np.exp(-(image - 0.5))), run="synthetic",
                    record={"judge": "synthetic", "sources": list(origins)})


def set_cover_reference(correct: np.ndarray) -> list[int]:
    """The textbook greedy set cover on Python sets (what a notebook does), ties to the lowest
    index: the reference :func:`~imagenet_hard.analysis.cover.greedy_cover` is timed against."""
    sets = [set(np.flatnonzero(correct[:, t]).tolist()) for t in range(correct.shape[1])]
    left = set().union(*sets)
    picked = []
    while left:
        best = max(range(len(sets)), key=lambda t: (len(sets[t] & left), -t))
        picked.append(best)
        left -= sets[best]
    return picked


@dataclass
class AnalysisBench:
    images: int
    analysis_seconds: float
    stats_seconds: float
    order_seconds: float
    cover_seconds: float
    reference_seconds: float
    same_cover: bool
    cover_size: int

    def summary(self) -> str:
        return (f"imhard analyze on {self.images} synthetic images: {self.analysis_seconds:.2f} s "
                f"in all (report, JSON, plots, held-out order comparison); statistics of all "
                f"subsets {self.stats_seconds:.2f} s, order comparison {self.order_seconds:.2f} s "
                f"(imports excluded)\n"
                f"greedy cover (size {self.cover_size}): bit-packed {self.cover_seconds:.3f} s, "
                f"set-based reference {self.reference_seconds:.2f} s "
                f"({self.reference_seconds / max(self.cover_seconds, 1e-9):.0f}x); same cover: "
                f"{self.same_cover}")


def bench_analysis(images: int = 13000, seed: int = 0, echo=print) -> AnalysisBench:
    """Time a whole analysis of ``images`` synthetic masks, and both greedy covers on them."""
    import matplotlib.figure  # noqa: F401 - imports are not the analysis' time

    from ..mining import order  # noqa: F401
    from .stats import analyze

    masks = synthetic_masks(images, seed)
    echo(f"analysing {images} synthetic images …")
    with tempfile.TemporaryDirectory(prefix="imhard-bench-analysis-") as tmp:
        t0 = time.perf_counter()
        write_analysis(masks, Path(tmp))
        analysis = time.perf_counter() - t0
    t0 = time.perf_counter()
    analyze(masks)
    stats = time.perf_counter() - t0
    t0 = time.perf_counter()
    held_out_forward_passes(masks)
    order_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = greedy_cover(masks.correct)
    cover = time.perf_counter() - t0
    echo("the set-based reference cover …")
    t0 = time.perf_counter()
    ref = set_cover_reference(masks.correct)
    reference = time.perf_counter() - t0
    return AnalysisBench(images, analysis, stats, order_time, cover, reference,
                         list(ours.transforms) == ref, ours.size)


# -- forward passes of early exit: learned order against the heuristic ------------------------

def write_variants(home: Path, variants: int, seed: int = 0) -> str:
    """Augmented copies of the built ``sample`` photos as source ``sample_variants``: a random
    crop of 35–100 % of the area (aspect 3:4 to 4:3), a horizontal flip half the time and a
    down-scale to 50–100 %; labels as the photo's."""
    from PIL import Image

    from .. import home as homes
    from ..records import SourceRow, make_id, read_table, write_source_table

    rng = np.random.default_rng(seed)
    root = homes.data_home(home)
    rows = []
    for photo in read_table(homes.source_table_path("sample", home)).to_pylist():
        with Image.open(root / photo["path"]) as im:
            rgb = im.convert("RGB")
        for k in range(variants):
            area = rgb.width * rgb.height * rng.uniform(0.35, 1.0)
            aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            w = int(min(rgb.width, round(np.sqrt(area * aspect))))
            h = int(min(rgb.height, round(np.sqrt(area / aspect))))
            x, y = rng.integers(0, rgb.width - w + 1), rng.integers(0, rgb.height - h + 1)
            out = rgb.crop((int(x), int(y), int(x) + w, int(y) + h))
            if rng.random() < 0.5:
                out = out.transpose(Image.FLIP_LEFT_RIGHT)
            f = rng.uniform(0.5, 1.0)
            out = out.resize((max(8, int(w * f)), max(8, int(h * f))), Image.BICUBIC)
            member = f"{Path(photo['path']).stem}-{k:03d}.png"
            dest = homes.sources_dir(home) / VARIANT_SOURCE / member
            dest.parent.mkdir(parents=True, exist_ok=True)
            out.save(dest)
            rows.append(SourceRow(
                id=make_id(VARIANT_SOURCE, member), origin=VARIANT_SOURCE,
                path=str(dest.relative_to(root)), label=photo["label"],
                english_label=photo["english_label"], label_space=photo["label_space"],
                width=out.width, height=out.height, sha256=_sha(dest)))
    write_source_table(rows, homes.source_table_path(VARIANT_SOURCE, home), VARIANT_SOURCE)
    return VARIANT_SOURCE


def _sha(path: Path) -> str:
    from ..files import sha256_file

    return sha256_file(path)


@dataclass
class OrderBench:
    judge: str
    results: dict[str, OrderComparison]

    def summary(self) -> str:
        lines = [f"forward passes per image, early exit, learned order vs heuristic (judge "
                 f"{self.judge}; learned on one half, replayed on the other):"]
        lines += [f"  {name}: {cmp.summary()}" for name, cmp in self.results.items()]
        return "\n".join(lines)


def bench_order(judge: str = "efficientnet-lite0", variants: int = 8, home=None,
                device: str = "cpu", splits: int = 10, synthetic: int = 13000,
                echo=print) -> OrderBench:
    """Mine the sample photos (and ``variants`` augmented copies of each) exhaustively in data
    home ``home`` (resumable), then compare the orders on held-out halves."""
    from ..mining import mine
    from ..sources import build

    home = Path(home or tempfile.mkdtemp(prefix="imhard-bench-order-"))
    build("sample", home=home)
    echo(f"mining the sample photos exhaustively with {judge} in {home} …")
    mine(["sample"], judge, home=home, run=SAMPLE_RUN, exhaustive=True, device=device,
         shard_size=1, progress=True)
    results = {"sample photos": held_out_forward_passes(load_run(SAMPLE_RUN, home), splits)}
    if variants:
        write_variants(home, variants)
        echo(f"mining {variants} augmented variants of each photo exhaustively …")
        mine([VARIANT_SOURCE], judge, home=home, run=VARIANT_RUN, exhaustive=True,
             device=device, shard_size=8, progress=True)
        masks = load_run(VARIANT_RUN, home)
        photo = [i.rsplit("-", 1)[0] for i in masks.ids]
        results["sample variants, random halves"] = held_out_forward_passes(masks, splits)
        results["sample variants, halves by photo"] = held_out_forward_passes(masks, splits,
                                                                              groups=photo)
    results["synthetic, peak S=320"] = held_out_forward_passes(synthetic_masks(synthetic), splits)
    results["synthetic, peak S=96"] = held_out_forward_passes(
        synthetic_masks(synthetic, peak=96.0), splits)
    return OrderBench(judge, results)
