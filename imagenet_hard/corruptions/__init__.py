"""ImageNet-C's 19 corruptions at any image size, deterministic per seed.

``corrupt(image, name, severity, seed)`` returns a uint8 (H, W, 3) array of the input's shape for
any size from 32×32 up (4000×4000 is tested). Two backends:

- ``reference``: the maintained ``imagecorruptions-imaug`` package, run with a private
  per-call generator (see :mod:`.reference`), so the same seed gives the same bytes in any
  thread, call after call;
- ``torch``: a batched reimplementation for CPU and CUDA
  (``imagenet_hard.corruptions.torch_backend``), checked against the reference.

Submodules: ``params`` (names, severity parameters as data), ``reference``, ``bench``
(``imhard bench corrupt``), ``build`` (the ``imagenet-c`` source tables). Importing this package
imports neither torch nor the reference's own dependencies; each backend loads on first use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..errors import ImHardError, InvalidValueError, unknown_name
from .params import (
    BENCHMARK,
    DETERMINISTIC,
    HELD_OUT,
    NAMES,
    PAPER_SIX,
    SEVERITIES,
    SEVERITY_PARAMS,
    zoom_factors,
)

BACKENDS = ("reference", "torch")
MIN_SIDE = 32
SEED_LIMIT = 2**32  # seeds are what numpy's RandomState accepts: 0 ≤ seed < 2**32
#: Images per call to the torch backend in :func:`corrupt_batch`.
TORCH_CHUNK = 16


def check_name(name: str) -> str:
    """The canonical corruption name (``zoom-blur`` → ``zoom_blur``) or an error listing them."""
    key = str(name).strip().lower().replace("-", "_")
    if key in NAMES:
        return key
    raise unknown_name("corruption", name, NAMES, key=key)


def check_severity(severity) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) \
            or int(severity) not in SEVERITIES:
        raise InvalidValueError(f"severity must be one of {', '.join(map(str, SEVERITIES))}, "
                                f"got {severity!r}")
    return int(severity)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= int(seed) < SEED_LIMIT:
        raise InvalidValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise unknown_name("corruption backend", backend, BACKENDS, n=1)
    return backend


def check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        what = (f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise InvalidValueError(f"corrupt() takes a uint8 numpy array of shape (H, W, 3), got "
                                f"a {what}; convert with numpy.asarray(pil_image.convert('RGB'))")
    h, w = image.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InvalidValueError(f"image is {w}x{h}; the corruptions need at least "
                                f"{MIN_SIDE}x{MIN_SIDE} pixels")
    return np.ascontiguousarray(image)


def image_seed(image_id: str, name: str, severity: int) -> int:
    """The seed the ``imagenet-c`` builder uses for one image: the first 4 bytes (big-endian) of
    SHA-256 of ``"<image id>|<corruption>|<severity>"``, UTF-8."""
    digest = hashlib.sha256(f"{image_id}|{name}|{severity}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def corrupt(image: np.ndarray, name: str, severity: int, seed: int,
            backend: str = "reference", device: str = "cpu") -> np.ndarray:
    """``image`` (uint8, H×W×3) corrupted by ``name`` at ``severity`` (1..5), drawn from ``seed``.

    The same arguments give the same bytes, in any thread. ``device`` matters to the torch
    backend only.
    """
    return corrupt_batch([image], name, severity, [seed], backend, device)[0]


def corrupt_batch(images: Sequence[np.ndarray], name: str, severity: int, seeds: Sequence[int],
                  backend: str = "reference", device: str = "cpu") -> list[np.ndarray]:
    """Corrupt several images (one seed each); the torch backend batches images of one shape."""
    name, severity, backend = check_name(name), check_severity(severity), check_backend(backend)
    images = [check_image(im) for im in images]
    seeds = [check_seed(s) for s in seeds]
    if len(seeds) != len(images):
        raise InvalidValueError(f"{len(images)} images but {len(seeds)} seeds")
    if backend == "reference":
        from .reference import corrupt_reference

        return [corrupt_reference(im, name, severity, s) for im, s in zip(images, seeds,
                                                                          strict=True)]
    return _corrupt_torch(images, name, severity, seeds, device)


def load_torch_backend():
    """The torch backend module, or a clear error when it (or torch) is not installed."""
    import importlib

    try:
        module = importlib.import_module(f"{__name__}.torch_backend")
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            raise ImHardError("the torch corruption backend needs PyTorch: pip install torch; "
                              "or use backend 'reference'") from exc
        if exc.name == f"{__name__}.torch_backend":
            raise ImHardError("the torch corruption backend is not part of this installation "
                              f"({__name__}.torch_backend is missing); use backend "
                              "'reference'") from exc
        raise
    return module


def _corrupt_torch(images, name, severity, seeds, device) -> list[np.ndarray]:
    module = load_torch_backend()  # first: without torch, its clear error, not the import's
    import torch

    out: list[np.ndarray | None] = [None] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(im.shape, []).append(i)
    for shape, idx in groups.items():
        for start in range(0, len(idx), TORCH_CHUNK):
            part = idx[start:start + TORCH_CHUNK]
            batch = torch.from_numpy(np.stack([images[i] for i in part]))
            res = module.corrupt_torch(batch, name, severity, [seeds[i] for i in part], device)
            if tuple(res.shape) != (len(part), *shape) or res.dtype != torch.uint8:
                raise ImHardError(f"torch backend {name} returned {res.dtype} {tuple(res.shape)} "
                                  f"for {len(part)} images of shape {shape}")
            arr = res.cpu().numpy()
            for j, i in enumerate(part):
                out[i] = np.ascontiguousarray(arr[j])
    return out


__all__ = [
    "BACKENDS", "BENCHMARK", "DETERMINISTIC", "HELD_OUT", "NAMES", "PAPER_SIX", "SEVERITIES",
    "SEVERITY_PARAMS", "check_name", "check_severity", "corrupt", "corrupt_batch", "image_seed",
    "load_torch_backend", "zoom_factors",
]
