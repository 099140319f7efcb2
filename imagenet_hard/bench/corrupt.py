"""``imhard bench corrupt``: the reference ImageNet-C backend against the torch backend.

Per corruption, both backends corrupt the same photo (scikit-image's ``rocket``, 640×427 — the
size of a typical ImageNet validation image — or any photo, resized on request) through the one
public entry point :func:`imagenet_hard.corruptions.corrupt`, in this process, one warm-up call
each (numba compiles ``glass_blur``, torch builds its kernels) and then ``repeat`` calls with
distinct seeds; a backend's images/s is ``1 / median``. ``threads`` caps OpenCV's and torch's
threads (restored afterwards), so the default compares one core with one core.

The report's two timings sum over the corruptions timed; ``results`` holds each corruption's
rates and ratio, and the notes check the issue's targets: torch ≥ 5× the reference on
``zoom_blur`` and no torch corruption slower than 1 s per 640×427 image.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import InvalidValueError
from .report import BenchReport, Timing

DEFAULT_PHOTO = ("skimage", "data/rocket.jpg")
ZOOM_BLUR_TARGET = 5.0
SECONDS_PER_IMAGE_TARGET = 1.0


def parse_image_size(text: str) -> tuple[int, int]:
    """``--size WxH`` → (width, height) in pixels (an image size; byte sizes are
    :mod:`imagenet_hard.sizes`)."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise InvalidValueError(f"--size {text!r}: write it as WIDTHxHEIGHT, e.g. 640x427") from None
    if w < 32 or h < 32:
        raise InvalidValueError(f"--size {text!r}: the corruptions need at least 32x32")
    return w, h


def photo(path: str | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """The benchmark photo (``path`` or the default) as uint8 (H, W, 3), resized (bicubic) to
    ``size`` = (W, H) if given."""
    from importlib import resources

    from PIL import Image

    from ..pixels import open_image, to_rgb
    from .images import open_images

    if path:
        im = open_images([path])[0]
    else:
        package, resource = DEFAULT_PHOTO
        with resources.as_file(resources.files(package).joinpath(resource)) as f:
            im = open_image(f)
    im = to_rgb(im)
    if size is not None and size != im.size:
        im = im.resize(size, Image.BICUBIC)
    return np.asarray(im)


def _seconds(fn: Callable[[int], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls with seeds 1..repeat, after one warm-up call."""
    fn(0)
    times = []
    for seed in range(1, repeat + 1):
        start = time.perf_counter()
        fn(seed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _Threads:
    """Cap OpenCV's and torch's threads for the duration, then restore them."""

    def __init__(self, threads: int):
        import cv2
        import torch

        self.cv2, self.torch, self.threads = cv2, torch, threads

    def __enter__(self):
        self.saved = self.torch.get_num_threads(), self.cv2.getNumThreads()
        self.torch.set_num_threads(self.threads)
        self.cv2.setNumThreads(self.threads)

    def __exit__(self, *exc):
        self.torch.set_num_threads(self.saved[0])
        self.cv2.setNumThreads(self.saved[1])


def bench_corrupt(image: np.ndarray | None = None, names: Sequence[str] | None = None,
                  severity: int = 5, repeat: int = 3, threads: int = 1, device: str | None = None,
                  echo: Callable[[str], None] | None = None) -> BenchReport:
    """Time every corruption of ``names`` (default: all 19) with both backends on ``image``
    (default: the 640×427 photo) at ``severity``; the torch backend on ``device`` (default: CUDA
    when present, :func:`imagenet_hard.devices.resolve_device`)."""
    from ..corruptions import NAMES, check_image, check_name, check_severity, corrupt
    from ..devices import resolve_device

    device = str(resolve_device(device))

    names = [check_name(n) for n in (NAMES if names is None else names)]
    severity = check_severity(severity)
    if repeat < 1 or threads < 1:
        raise InvalidValueError("--repeat and --threads must be positive")
    img = check_image(photo() if image is None else image)
    per: dict[str, tuple[float, float]] = {}
    with _Threads(threads):
        for name in names:
            if echo:
                echo(f"timing {name} …")
            ref = _seconds(lambda s, n=name: corrupt(img, n, severity, s), repeat)
            ours = _seconds(lambda s, n=name: corrupt(img, n, severity, s, backend="torch",
                                                      device=device), repeat)
            per[name] = (ref, ours)
    h, w = img.shape[:2]
    results = {name: f"{1 / ref:.2f} → {1 / ours:.2f} img/s ({ref / ours:.2f}x)"
               for name, (ref, ours) in per.items()}
    return BenchReport(
        name="corrupt", unit="images",
        subject=f"{len(names)} ImageNet-C corruptions at severity {severity} on one {w}×{h} photo",
        reference=Timing("imagecorruptions-imaug (reference backend)", len(names),
                         sum(r for r, _ in per.values())),
        ours=Timing(f"torch backend on {device}", len(names), sum(o for _, o in per.values())),
        config={"size": f"{w}x{h}", "severity": severity, "repeat": repeat, "threads": threads,
                "device": device},
        results=results, notes=_target_notes(per, (w, h)))


def _target_notes(per: dict[str, tuple[float, float]], size: tuple[int, int]) -> tuple[str, ...]:
    notes = []
    if "zoom_blur" in per:
        ref, ours = per["zoom_blur"]
        met = "met" if ref / ours >= ZOOM_BLUR_TARGET else "NOT met"
        notes.append(f"zoom_blur: torch {ref / ours:.1f}x the reference "
                     f"(target ≥ {ZOOM_BLUR_TARGET:g}x: {met})")
    slowest = max(per, key=lambda n: per[n][1])
    line = f"slowest torch corruption: {slowest}, {per[slowest][1]:.3f} s per image"
    if size == (640, 427):
        met = "met" if per[slowest][1] <= SECONDS_PER_IMAGE_TARGET else "NOT met"
        line += f" (target ≤ {SECONDS_PER_IMAGE_TARGET:g} s at 640×427: {met})"
    return (*notes, line)
