"""``imhard bench score --suite``: the suite's overhead. The same N images are scored (a) as one
published-format dataset by ``score`` and (b) split across K source tables by ``score_suite``,
with the offline EfficientNet-Lite0 submission, in this process. Target: (b) within 10% of (a).

Both are timed as wall time from the call to the written result (child start, model load,
prediction, result files), each with an empty prediction cache; the images-only files the child
reads are made once before timing (both paths keep them across runs). The runs alternate and each
keeps its best, so a busy machine slows both alike.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .. import home as homes
from .report import BenchReport, Timing

#: The suite may take at most 10% longer than one dataset of the same images.
MAX_OVERHEAD = 0.10


def _images(n: int, home: Path) -> list[bytes]:
    """``n`` distinct photos: the sample's, each copy with one pixel changed (PNG)."""
    import pyarrow.parquet as pq

    from ..home import inside_home
    from ..pixels import open_image, to_rgb
    from ..sources import build_source

    rows = pq.read_table(build_source("sample", home=home)).to_pylist()
    out = []
    for k in range(n):
        row = rows[k % len(rows)]
        im = to_rgb(open_image(inside_home(home, row["path"], f"sample row {row['id']!r}")))
        im.putpixel((0, 0), (k % 256, (k // 256) % 256, 7))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def _tables(images: list[bytes], k: int, home: Path) -> list[str]:
    """Split ``images`` into ``k`` source tables (label space in1k) under the data home."""
    from ..labels import english_labels
    from ..records import SourceRow, write_source_table

    names = []
    for t in range(k):
        rows = []
        for i in range(t, len(images), k):
            dest = home / "sources" / f"bench_{t}" / f"{i:06d}.png"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(images[i])
            rows.append(SourceRow(id=f"bench_{t}/{i:06d}.png", origin=f"bench_{t}",
                                  path=str(dest.relative_to(home)), label=[281],
                                  english_label=english_labels([281]), label_space="in1k",
                                  width=1, height=1, sha256=hashlib.sha256(images[i]).hexdigest()))
        write_source_table(rows, home / "sources" / f"bench_{t}.parquet", f"bench_{t}")
        names.append(f"bench-{t}")
    return names


def bench_suite(images: int = 128, sets: int = 4, batch_size: int = 32, workers: int | None = None,
                device: str | None = None, repeat: int = 2,
                echo: Callable[[str], None] = print) -> BenchReport:
    """Best wall time of each way; the report's ratio is one dataset's time ÷ the suite's."""
    from ..score.examples import write_example_submission
    from ..score.harness import RunOptions, score, score_suite
    from ..score.sets import published_set, resolve_sets, write_folder

    with tempfile.TemporaryDirectory(prefix="imhard-bench-suite-") as tmp:
        home = Path(tmp) / "home"
        data = _images(images, home)
        folder = write_folder(Path(tmp) / "one", data, [[281]] * images, ["bench"] * images,
                              [f"b/{i}" for i in range(images)])
        names = _tables(data, sets, home)
        sub = write_example_submission(Path(tmp) / "efficientnet_lite0.py")
        opts = RunOptions(device=device, batch_size=batch_size, workers=workers)
        published_set(folder, home=home).images()            # images-only files, made once
        for s in resolve_sets(names, home=home):
            s.images()
        best = {"one": float("inf"), "suite": float("inf")}
        for r in range(repeat):
            for way in ("one", "suite"):
                shutil.rmtree(homes.scores_dir(home) / "cache", ignore_errors=True)
                echo(f"run {r + 1}/{repeat}: {images} images as "
                     + ("one dataset …" if way == "one" else f"{sets} suite sets …"))
                t0 = time.perf_counter()
                if way == "one":
                    score(sub, dataset=folder, home=home, out=Path(tmp) / "one.json", options=opts)
                else:
                    score_suite(sub, sets=names, home=home, out=Path(tmp) / "s.suite.json",
                                options=opts)
                best[way] = min(best[way], time.perf_counter() - t0)
    overhead = best["suite"] / best["one"] - 1
    return BenchReport(
        name="score --suite", unit="images",
        subject=f"the same {images} images scored as one dataset and as {sets} suite sets "
                "(wall time from the call to the written result)",
        reference=Timing("one dataset (imhard score)", images, best["one"]),
        ours=Timing(f"{sets} suite sets (imhard score --suite)", images, best["suite"]),
        target=round(1 / (1 + MAX_OVERHEAD), 3),
        config={"model": "EfficientNet-Lite0", "images": images, "sets": sets,
                "batch size": batch_size, "DataLoader workers": opts.resolved_workers(),
                "device": opts.resolved_device(), "best of": repeat},
        notes=(f"suite overhead {100 * overhead:+.1f}% (target ≤ {100 * MAX_OVERHEAD:.0f}%)",))
