"""``imhard bench corrupt``: images/s of the reference and torch backends, per corruption, on the
same photo in one process, and their ratio.

The photo is scikit-image's ``rocket`` (640×427, the size of a typical ImageNet validation image),
optionally resized. Each backend corrupts it once to warm up (numba compiles ``glass_blur``; torch
builds its kernels), then ``repeat`` times with distinct seeds; images/s is ``1 / median`` of those
wall-clock times. ``threads`` caps the threads of OpenCV (used by the reference) and torch, so the
default compares one core against one core. With CUDA present the torch backend is timed there as
well (rows with ``device='cuda'``; the reference column is the same CPU figure).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ImHardError, InvalidValueError
from . import NAMES, check_image, check_name, check_severity, corrupt

DEFAULT_PHOTO = ("skimage", "data/rocket.jpg")


@dataclass(frozen=True)
class CorruptBenchRow:
    name: str
    reference_ips: float
    torch_ips: float | None  # None when the torch backend is not installed
    ratio: float | None      # torch / reference
    device: str = "cpu"      # where the torch backend ran


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` → (width, height)."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise InvalidValueError(f"--size {text!r}: write it as WIDTHxHEIGHT, e.g. 640x427") from None
    if w < 32 or h < 32:
        raise InvalidValueError(f"--size {text!r}: the corruptions need at least 32x32")
    return w, h


def default_photo(size: tuple[int, int] | None = None) -> np.ndarray:
    """The benchmark photo as uint8 (H, W, 3), resized (bicubic) to ``size`` = (W, H) if given."""
    from importlib import resources

    from PIL import Image

    package, resource = DEFAULT_PHOTO
    with resources.as_file(resources.files(package).joinpath(resource)) as f, Image.open(f) as im:
        im = im.convert("RGB")
        if size is not None and size != im.size:
            im = im.resize(size, Image.BICUBIC)
        return np.asarray(im)


def _per_second(fn: Callable[[int], object], repeat: int) -> float:
    fn(0)  # warm-up
    times = []
    for seed in range(1, repeat + 1):
        t = time.perf_counter()
        fn(seed)
        times.append(time.perf_counter() - t)
    return 1.0 / statistics.median(times)


def _limit_threads(threads: int) -> None:
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:
        pass


def _torch_devices(device: str | None) -> list[str]:
    """Devices to time the torch backend on ([] when it is not installed)."""
    from . import load_torch_backend

    try:
        load_torch_backend()
    except ImHardError:
        return []
    import torch

    if device:
        return [device]
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def bench_corrupt(image: np.ndarray | None = None, size: tuple[int, int] | None = None,
                  names: Sequence[str] = NAMES, severity: int = 5, repeat: int = 3,
                  threads: int = 1, device: str | None = None,
                  echo: Callable[[str], None] | None = None) -> list[CorruptBenchRow]:
    """Time every corruption in ``names`` with both backends on the same image; one row per
    (corruption, torch device)."""
    names = [check_name(n) for n in names]
    severity = check_severity(severity)
    if repeat < 1 or threads < 1:
        raise InvalidValueError("repeat and threads must be positive")
    img = check_image(image) if image is not None else default_photo(size)
    _limit_threads(threads)
    devices = _torch_devices(device)
    if devices:
        import torch

        torch.set_num_threads(threads)
    rows = []
    for name in names:
        ref = _per_second(lambda s, n=name: corrupt(img, n, severity, s), repeat)
        for dev in devices or ["cpu"]:
            fast = None
            if devices:
                fast = _per_second(lambda s, n=name, d=dev: corrupt(img, n, severity, s,
                                                                     backend="torch", device=d),
                                   repeat)
            rows.append(CorruptBenchRow(name, ref, fast, fast / ref if fast else None, dev))
            if echo:
                echo(format_row(rows[-1]))
    return rows


def format_row(row: CorruptBenchRow) -> str:
    fast = f"{row.torch_ips:10.2f}" if row.torch_ips is not None else f"{'n/a':>10}"
    ratio = f"{row.ratio:7.2f}x" if row.ratio is not None else f"{'n/a':>8}"
    return f"{row.name:<18} {row.reference_ips:10.2f} {fast} {ratio}  {row.device}"


def format_rows(rows: Sequence[CorruptBenchRow], shape: tuple[int, ...] | None = None,
                severity: int | None = None) -> str:
    """The rows as a table (images/s; ratio = torch / reference)."""
    head = []
    if shape is not None:
        head.append(f"image {shape[1]}x{shape[0]}, severity {severity}; images/s, "
                    "ratio = torch / reference")
    head.append(f"{'corruption':<18} {'reference':>10} {'torch':>10} {'ratio':>8}  device")
    lines = head + [format_row(r) for r in rows]
    if rows and all(r.torch_ips is None for r in rows):
        lines.append("torch backend not installed: its column is n/a")
    return "\n".join(lines)
