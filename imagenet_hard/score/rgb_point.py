"""Where scoring converts a decoded image to RGB: where the authors did, after resize and crop.

The authors scored ImageNet-Hard on images decoded by ``datasets`` in their stored mode, through
``Resize(256) → CenterCrop(224) → convert("RGB") → ToTensor → Normalize``
(taesiri/ZoomIsAllYouNeed ``src/ImageNet_Hard/Benchmark_ImageNet_Hard.ipynb``: the "Transforms"
cell ``sz7Dgb6YeMm7``, applied by ``set_transform`` in cell ``t1bYMHICeMm8``); OpenAI CLIP's and
open_clip's own preprocessing convert at the same point. The order matters for palette and alpha
images: PIL resizes a palette image with nearest neighbour whatever filter is asked for, and an
RGBA image with premultiplied alpha, so converting first yields other pixels.

:func:`rgb_after_resize_crop` wraps a model-form submission's ``transform``. When it is a
torchvision ``Compose`` (``transforms`` or ``transforms.v2``), its leading ``Resize`` and
``CenterCrop`` steps receive the image in its stored mode and every later step an RGB image; any
other transform receives an RGB image, as before. So the submission's own code only ever sees RGB.
The predict form gets RGB images too, except a predictor with ``accepts_stored_mode = True`` (the
model layer's ``Model``, which converts after its centre crop as ``clip.load`` does).
(Mining is different: the authors' ``eval-CLIP.py`` read images through ``ImageFolder``, whose
loader converts to RGB on load, before the zoom; ``imagenet_hard.zoom`` does the same.)
"""

from __future__ import annotations

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
    from torchvision import transforms as T
    from torchvision.transforms import v2

    # Exact types only: a subclass may have its own __call__, which splitting would bypass.
    if type(transform) in (T.Compose, v2.Compose):
        return list(transform.transforms)
    return None


def rgb_after_resize_crop(transform: Callable) -> RGBAfterResizeCrop:
    """``transform`` with the RGB conversion placed after its leading Resize/CenterCrop steps."""
    from torchvision import transforms as T
    from torchvision.transforms import v2

    steps = _compose_steps(transform)
    if steps is None:
        return RGBAfterResizeCrop((), (transform,))
    geometric = (T.Resize, T.CenterCrop, v2.Resize, v2.CenterCrop)
    n = 0
    while n < len(steps) and isinstance(steps[n], geometric):
        n += 1
    return RGBAfterResizeCrop(steps[:n], steps[n:])
