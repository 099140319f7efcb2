"""Where scoring converts a decoded image to RGB: where the authors did, after resize and crop.

The authors' notebook (taesiri/ZoomIsAllYouNeed ``Benchmark_ImageNet_Hard.ipynb``, cell
``sz7Dgb6YeMm7``) ran ``Resize(256) → CenterCrop(224) → convert("RGB") → ToTensor → Normalize``
on images in their stored mode, as CLIP's preprocessing does; for palette and alpha images the
order changes the pixels. So a model-form ``transform`` that is a torchvision ``Compose`` gets its
leading Resize/CenterCrop steps on the stored-mode image and every later step on RGB; any other
transform, and the predict form (unless it says ``accepts_stored_mode``), gets RGB.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from ..pixels import to_rgb


class RGBAfterResizeCrop:
    """``head`` steps on the stored-mode image, then RGB conversion, then ``tail`` steps."""

    def __init__(self, head: Sequence[Callable], tail: Sequence[Callable]):
        self.head = tuple(head)
        self.tail = tuple(tail)

    def __call__(self, image):
        for step in self.head:
            image = step(image)
        image = to_rgb(image)
        for step in self.tail:
            image = step(image)
        return image

    def __repr__(self) -> str:
        names = [type(s).__name__ for s in self.head] + ["RGB"] + [type(s).__name__ for s in self.tail]
        return f"RGBAfterResizeCrop({' → '.join(names)})"


def _compose_steps(transform) -> list | None:
    if "torchvision" not in sys.modules:
        # then no transform is a torchvision Compose; importing it would cost the child ~2 s
        return None
    from torchvision import transforms as T
    from torchvision.transforms import v2

    # Exact types only: a subclass may have its own __call__, which splitting would bypass.
    if type(transform) in (T.Compose, v2.Compose):
        return list(transform.transforms)
    return None


def rgb_after_resize_crop(transform: Callable) -> RGBAfterResizeCrop:
    """``transform`` with the RGB conversion placed after its leading Resize/CenterCrop steps."""
    steps = _compose_steps(transform)
    if steps is None:
        return RGBAfterResizeCrop((), (transform,))
    from torchvision import transforms as T
    from torchvision.transforms import v2

    geometric = (T.Resize, T.CenterCrop, v2.Resize, v2.CenterCrop)
    n = 0
    while n < len(steps) and isinstance(steps[n], geometric):
        n += 1
    return RGBAfterResizeCrop(steps[:n], steps[n:])
