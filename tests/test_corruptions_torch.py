"""Torch backend against the reference: a skeleton that skips until the backend is installed.

The tolerance tests (per corruption, as stated in README) belong with the backend; this file only
checks the contract ``imagenet_hard.corruptions.corrupt(..., backend="torch")`` relies on.
"""

from __future__ import annotations

import numpy as np
import pytest

from imagenet_hard import corruptions as C

torch = pytest.importorskip("torch")
pytest.importorskip("imagenet_hard.corruptions.torch_backend",
                    reason="the torch corruption backend is not installed yet")


def photo(w=150, h=100) -> np.ndarray:
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.coffee()).resize((w, h), Image.BICUBIC))


@pytest.mark.parametrize("name", C.NAMES)
@pytest.mark.parametrize("severity", C.SEVERITIES)
def test_torch_shape_dtype_and_determinism(name, severity):
    img = photo()
    out = C.corrupt(img, name, severity, 4, backend="torch")
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert C.corrupt(img, name, severity, 4, backend="torch").tobytes() == out.tobytes()
    if name not in C.DETERMINISTIC:
        assert C.corrupt(img, name, severity, 5, backend="torch").tobytes() != out.tobytes()


def test_batch_equals_one_by_one():
    imgs = [photo(), photo(120, 90), photo()]
    seeds = [1, 2, 3]
    batch = C.corrupt_batch(imgs, "gaussian_noise", 3, seeds, backend="torch")
    single = [C.corrupt(im, "gaussian_noise", 3, s, backend="torch")
              for im, s in zip(imgs, seeds, strict=True)]
    assert [b.tobytes() for b in batch] == [s.tobytes() for s in single]
