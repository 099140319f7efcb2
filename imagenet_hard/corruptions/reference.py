"""The reference backend: ``imagecorruptions-imaug`` (import name ``imagecorruptions``), seeded.

The package draws from NumPy's *global* generator (``np.random.normal`` …), which other code in
the process may use at the same time, so seeding it before each call is not deterministic under
threads. Instead its corruption functions are re-bound once to a private copy of their module
namespace whose ``np`` is NumPy except for ``np.random``: that resolves to a ``RandomState`` owned
by the calling thread and seeded per call. No lock, and the global generator is never touched.
``RandomState(seed)`` is the generator ``np.random.seed(seed)`` resets, so the bytes equal what
the package gives after ``np.random.seed(seed)`` in a single-threaded program.

The two corruptions that take a ``seed`` argument get the same seed: ``impulse_noise`` (drawn by
scikit-image from ``default_rng(seed)``) and ``glass_blur`` (its numba kernel seeds numba's
generator, which is per thread). Nothing in the package uses Python's ``random``. Outputs (float
arrays or PIL images, depending on the corruption) become uint8 the way ImageNet-C saved them:
``np.uint8`` of the clipped values, i.e. truncation.
"""

from __future__ import annotations

import functools
import logging
import threading
import types
from collections.abc import Callable

import numpy as np

from ..errors import ImHardError
from .params import NAMES

#: Corruptions whose function takes the seed as an argument instead of using ``np.random``.
SEEDED_BY_ARGUMENT = frozenset({"impulse_noise", "glass_blur"})

_log = logging.getLogger(__name__)
_local = threading.local()


class _NumpyPrivateRandom(types.ModuleType):
    """NumPy's namespace with ``random`` replaced by the calling thread's ``RandomState``."""

    def __init__(self):
        super().__init__("numpy")
        self.__dict__.update((k, v) for k, v in vars(np).items() if k != "random")

    @property
    def random(self) -> np.random.RandomState:
        state = getattr(_local, "state", None)
        if state is None:
            raise RuntimeError("a reference corruption ran outside imagenet_hard's seeded call")
        return state

    def __getattr__(self, name):  # numpy's lazily loaded submodules
        return getattr(np, name)


def _quiet_print(*args, **_kwargs) -> None:
    """The package prints when it pads an odd-sized layer; keep that out of progress bars."""
    _log.debug("imagecorruptions: %s", " ".join(str(a) for a in args))


@functools.cache
def _functions() -> dict[str, Callable]:
    from imagecorruptions import corruptions as module

    namespace = dict(vars(module))
    namespace["np"] = _NumpyPrivateRandom()
    namespace["print"] = _quiet_print
    for key, value in vars(module).items():
        # numba kernels are dispatchers, not functions: they keep numba's own (per-thread) RNG
        if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
            fn = types.FunctionType(value.__code__, namespace, value.__name__,
                                    value.__defaults__, value.__closure__)
            fn.__kwdefaults__ = value.__kwdefaults__
            namespace[key] = fn
    missing = [n for n in NAMES if not callable(namespace.get(n))]
    if missing:
        raise ImHardError(f"the installed imagecorruptions lacks {', '.join(missing)}; install "
                          "imagecorruptions-imaug>=1.1.5 (pip install -U imagecorruptions-imaug)")
    return {n: namespace[n] for n in NAMES}


def to_uint8(out, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A corruption's output as a uint8 (H, W, 3) array, as ImageNet-C saved it."""
    arr = np.asarray(out)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)  # truncates, like ImageNet-C's np.uint8
    if arr.shape != shape:
        raise ImHardError(f"reference {name} returned shape {arr.shape} for an image of shape "
                          f"{shape}; please report this size")
    return np.ascontiguousarray(arr)


def corrupt_reference(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """``imagecorruptions``' ``name`` at ``severity`` on a checked uint8 (H, W, 3) image."""
    from PIL import Image

    fn = _functions()[name]
    previous = getattr(_local, "state", None)
    _local.state = np.random.RandomState(seed)
    try:
        kwargs = {"seed": seed} if name in SEEDED_BY_ARGUMENT else {}
        out = fn(Image.fromarray(image), severity, **kwargs)
    finally:
        _local.state = previous
    return to_uint8(out, image.shape, name)


def versions() -> dict[str, str]:
    """Versions of the packages whose code shapes the reference's bytes."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("imagecorruptions-imaug", "numpy", "scipy", "scikit-image",
                 "opencv-python-headless", "opencv-python", "numba", "pillow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
