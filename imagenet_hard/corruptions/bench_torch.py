"""Throughput of the torch corruption backend against the reference (``imhard bench corrupt``).

:func:`bench_corruptions` times, in one process on one photo, ``imagecorruptions.corrupt`` (the
reference, its global NumPy generator seeded before each call) and
:func:`~imagenet_hard.corruptions.torch_backend.corrupt_torch` for each corruption, and returns
one :class:`CorruptionBenchRow` per corruption. Both run on ``threads`` CPU threads (torch and
OpenCV; the previous settings are restored). Timings are wall clock, best of ``repeat`` after a
warm-up call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidValueError

#: The default photo: scikit-image's ``rocket.jpg``, 640×427, the size of the issue's target.
DEFAULT_PHOTO = ("skimage", "data/rocket.jpg")


@dataclass(frozen=True)
class CorruptionBenchRow:
    name: str
    reference_per_s: float
    torch_per_s: float

    @property
    def ratio(self) -> float:
        return self.torch_per_s / self.reference_per_s


def default_photo(size: tuple[int, int] | None = None) -> np.ndarray:
    """The default photo as uint8 (H, W, 3), resized (Lanczos) to ``size`` = (width, height)."""
    from importlib import resources

    from PIL import Image

    package, resource = DEFAULT_PHOTO
    with resources.as_file(resources.files(package).joinpath(resource)) as f, Image.open(f) as im:
        im = im.convert("RGB")
        if size is not None:
            im = im.resize(size, Image.LANCZOS)
        return np.array(im)


def _best(fn, repeat: int, sync=lambda: None) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def bench_corruptions(image: np.ndarray | None = None, names: Sequence[str] | None = None,
                      severity: int = 5, repeat: int = 3, device: str = "cpu",
                      threads: int | None = 1) -> list[CorruptionBenchRow]:
    """Images/s of the reference and the torch backend on ``image`` (default: the 640×427
    :func:`default_photo`) for each of ``names`` (default: all 19) at ``severity``."""
    import cv2
    import imagecorruptions
    import torch

    from .torch_backend import NAMES_SUPPORTED, corrupt_torch

    names = list(NAMES_SUPPORTED if names is None else names)
    unknown = [n for n in names if n not in NAMES_SUPPORTED]
    if unknown:
        raise InvalidValueError(f"unknown corruption(s) {', '.join(unknown)}; "
                                f"known: {', '.join(NAMES_SUPPORTED)}")
    image = default_photo() if image is None else image
    batch = torch.as_tensor(np.array(image))[None].to(device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    saved = torch.get_num_threads(), cv2.getNumThreads()
    if threads is not None:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    rows = []
    try:
        for name in names:
            def reference(name=name):
                np.random.seed(0)
                # these two ignore the global generator unless given a seed
                extra = {"seed": 0} if name in ("impulse_noise", "glass_blur") else {}
                imagecorruptions.corrupt(image, corruption_name=name, severity=severity, **extra)

            def ours(name=name):
                corrupt_torch(batch, name, severity, [0], device=device)

            rows.append(CorruptionBenchRow(name, 1 / _best(reference, repeat),
                                           1 / _best(ours, repeat, sync)))
    finally:
        torch.set_num_threads(saved[0])
        cv2.setNumThreads(saved[1])
    return rows


def format_rows(rows: Sequence[CorruptionBenchRow]) -> str:
    lines = [f"{'corruption':<18} {'reference img/s':>15} {'torch img/s':>12} {'ratio':>7}"]
    lines += [f"{r.name:<18} {r.reference_per_s:>15.2f} {r.torch_per_s:>12.2f} {r.ratio:>6.2f}×"
              for r in rows]
    return "\n".join(lines)
