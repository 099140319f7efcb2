"""``imhard bench score``: the harness's overhead. EfficientNet-Lite0 (model/transform form) over
the same generated dataset, timed (a) through ``score`` — child process, DataLoader, per-batch
files — and (b) as a bare ``DataLoader`` + model loop in this process. Target: (a) ≥ 90% of (b).

(a) is the images/s that ``score`` records (rows ÷ time spent producing them; model load and child
start excluded, reported separately as wall time); (b) is rows ÷ loop time, the better of a run
before and a run after (a).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class BenchReport:
    images: int
    batch_size: int
    workers: int
    device: str
    harness_images_per_s: float
    harness_wall_s: float
    bare_images_per_s: float

    @property
    def ratio(self) -> float:
        return self.harness_images_per_s / self.bare_images_per_s

    def summary(self) -> str:
        return (f"EfficientNet-Lite0, {self.images} images, batch {self.batch_size}, "
                f"{self.workers} DataLoader workers, {self.device}\n"
                f"  bare DataLoader + model loop : {self.bare_images_per_s:8.2f} images/s\n"
                f"  imhard score (model form)    : {self.harness_images_per_s:8.2f} images/s "
                f"(wall {self.harness_wall_s:.1f} s incl. child start and model load)\n"
                f"  ratio {self.ratio:.3f} (target ≥ 0.90)")


def bare_loop(model, transform, ds, n: int, batch_size: int, workers: int, device: str) -> float:
    """Images/s of the plainest loop: DataLoader(transform) → model, in this process."""
    import torch

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return transform(ds[i]["image"].convert("RGB"))

    model = model.eval().to(device)
    loader = torch.utils.data.DataLoader(Rows(), batch_size=batch_size, num_workers=workers)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for x in loader:
            model(x.to(device)).argmax(1).cpu()
    return n / (time.perf_counter() - t0)


def bench_score(images: int = 128, batch_size: int = 32, workers: int | None = None,
                device: str | None = None, echo: Callable[[str], None] = print) -> BenchReport:
    import datasets

    from ..models import create_model
    from ..sources import build_source
    from .dataset import folder_from_source
    from .examples import write_example_submission
    from .harness import RunOptions, score

    with tempfile.TemporaryDirectory(prefix="imhard-bench-") as tmp:
        home = Path(tmp) / "home"
        table = build_source("sample", home=home)
        data = folder_from_source(table, Path(tmp) / "data", home=home,
                                  repeat=math.ceil(images / 9))
        sub = write_example_submission(Path(tmp) / "efficientnet_lite0.py")
        opts = RunOptions(device=device, batch_size=batch_size, workers=workers)
        ds = datasets.load_dataset(str(data), split="validation")
        lite0 = create_model("efficientnet-lite0", device="cpu")  # what the submission builds
        model, transform = lite0.module, lite0.transform
        args = (ds, images, batch_size, opts.resolved_workers(), opts.resolved_device())
        # The bare loop runs before and after the harness and keeps its better rate, so a busy
        # machine biases the ratio against the harness, never for it.
        echo(f"{images} images through a bare DataLoader loop …")
        bare = bare_loop(model, transform, *args)
        echo("the same images through the harness …")
        t0 = time.perf_counter()
        run = score(sub, dataset=data, limit=images, home=home, out=Path(tmp) / "r.json",
                    options=opts)
        wall = time.perf_counter() - t0
        echo("the bare loop again …")
        bare = max(bare, bare_loop(model, transform, *args))
    return BenchReport(images, batch_size, opts.resolved_workers(), opts.resolved_device(),
                       run.result.metrics["images_per_s"], wall, bare)
