"""``imhard bench order``: how many forward passes early exit spends per image with a crop order
learned from an exhaustive run (``imhard mine --order-from``) against the built-in heuristic, on
images the order was not learned from. It counts forward passes, exactly (the replay equals the
engine's ``n_forward``), rather than timing them, so it returns its own report.

The real-photo figures mine the offline ``sample`` photos exhaustively with a real judge, and
augmented variants of them (crops, flips, down-scales; seeded), in a scratch data home; synthetic
masks (:func:`~imagenet_hard.bench.analysis.synthetic_masks`) add a judge like the heuristic's
assumptions and one that needs zooming out.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis.masks import load_run
from ..analysis.ordering import OrderComparison, held_out_forward_passes
from ..errors import InvalidValueError
from .analysis import synthetic_masks

SAMPLE_RUN = "bench-order-sample"
VARIANT_SOURCE = "sample_variants"
VARIANT_RUN = "bench-order-variants"


def write_variants(home: Path, variants: int, seed: int = 0) -> str:
    """Augmented copies of the built ``sample`` photos as source ``sample_variants``: a random
    crop of 35–100 % of the area (aspect 3:4 to 4:3), a horizontal flip half the time and a
    down-scale to 50–100 %; labels as the photo's."""
    from PIL import Image

    from .. import catalog
    from .. import home as homes
    from ..pixels import open_image, to_rgb
    from ..records import SourceRow, make_id, read_table, write_source_table

    rng = np.random.default_rng(seed)
    root = homes.data_home(home)
    rows = []
    for photo in read_table(catalog.parse("sample").path(home)).to_pylist():
        what = f"source table 'sample' row {photo['id']!r}"
        rgb = to_rgb(open_image(homes.inside_home(root, photo["path"], what)))
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
    write_source_table(rows, catalog.parse(VARIANT_SOURCE).path(home), VARIANT_SOURCE)
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
                device: str | None = None, splits: int = 10, synthetic: int = 13000,
                run: str | None = None, echo: Callable[[str], None] = print) -> OrderBench:
    """Mine the sample photos (and ``variants`` augmented copies of each) exhaustively in data
    home ``home`` (resumable), then compare the orders on held-out halves. With ``run``, an
    exhaustive run of data home ``home`` is replayed instead of mining the photos (no variants:
    they would be written into that home)."""
    from ..mining import mine
    from ..sources import build

    if run is not None:
        if variants:
            raise InvalidValueError("--variants mines augmented photos into a scratch home; "
                                    "with --run give --variants 0 (or leave --run out).")
        masks = load_run(run, home)
        results = {f"run {masks.run}": held_out_forward_passes(masks, splits)}
        judge = masks.record.get("judge", judge)
    else:
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
