"""Eval preprocessing of a PIL image, as a value: resize, centre crop, RGB, normalise.

A :class:`Preprocess` says what a model's inputs are (so a reference submission can state the
procedure it follows, and a judge can normalise uint8 crops the same way) and builds the
torchvision transform on demand. No torch import until :meth:`Preprocess.transform` is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidValueError
from ..pixels import to_rgb

#: ImageNet's normalisation (torchvision and most timm weights; the authors' scripts).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: OpenAI CLIP's normalisation (open_clip.OPENAI_DATASET_MEAN/STD).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: A zero-shot judge's input normalisation: ``imagenet`` (IMAGENET_MEAN/STD, what the authors'
#: eval-CLIP.py used) or ``clip`` (the weights' own mean/std). The one list (mining protocols,
#: judges and the CLI read it from here; the scoring child may import this module).
NORMALIZATIONS = ("imagenet", "clip")
#: Forward precisions (autocast dtypes; fp32: none). The one list; judges add ``auto``.
PRECISIONS = ("fp32", "fp16", "bf16")

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class Preprocess:
    """Resize (the shorter side to ``resize``, or both sides when ``squash``), centre crop
    ``crop``, convert to RGB, scale to [0, 1] and normalise with ``mean``/``std``.

    RGB conversion comes after the crop, as in the authors' notebook and open_clip's transform.
    """

    resize: int
    crop: int
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    squash: bool = False

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise InvalidValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                                    f"got {self.interpolation!r}")
        if not (0 < self.crop <= self.resize):
            raise InvalidValueError(f"crop {self.crop} must be positive and at most the resize "
                                    f"{self.resize}")
        for label, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 3:
                raise InvalidValueError(f"{label} needs 3 values (R, G, B), got {len(values)}")
        if min(self.std) <= 0:
            raise InvalidValueError(f"std values must be positive, got {self.std}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def transform(self) -> Callable:
        """PIL image → normalised float tensor (3, crop, crop)."""
        from torchvision import transforms as T

        mode = T.InterpolationMode(self.interpolation)
        size = (self.resize, self.resize) if self.squash else self.resize
        return T.Compose([T.Resize(size, interpolation=mode), T.CenterCrop(self.crop),
                          T.Lambda(to_rgb), T.ToTensor(), T.Normalize(self.mean, self.std)])

    def describe(self) -> str:
        """One line for a submission file or a listing."""
        norm = {IMAGENET_MEAN: "ImageNet", CLIP_MEAN: "CLIP"}.get(self.mean, str(self.mean))
        side = "both sides" if self.squash else "shorter side"
        return (f"resize {side} to {self.resize} ({self.interpolation}), centre crop {self.crop}, "
                f"RGB, {norm} mean/std")


#: The authors' ``standard_transform`` for every ImageNet-trained classifier they scored
#: (taesiri/ZoomIsAllYouNeed, src/ImageNet_Hard/Benchmark_ImageNet_Hard.ipynb): Resize(256)
#: (torchvision's default, bilinear), CenterCrop(224), RGB, ImageNet mean/std.
AUTHORS_STANDARD = Preprocess(256, 224, "bilinear", IMAGENET_MEAN, IMAGENET_STD)
