"""Zero-shot CLIP judges: ``clip-vit-l-14`` (the paper's), ``open_clip:ARCH/TAG`` and any
CLIP-like model.

The class head is :func:`imagenet_hard.models.zero_shot.zero_shot_head` (normalised mean of the
80 normalised template embeddings per class; logits = 100 · cos), computed once per judge, so a
tiny random open_clip model in tests runs the same code as ViT-L/14.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import unknown_name
from ..models.preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, NORMALIZATIONS
from ..models.zero_shot import ZeroShotClassifier, zero_shot_head
from .base import Judge

__all__ = ["CLIP_MEAN", "CLIP_STD", "NORMALIZATIONS", "ClipJudge"]


class ClipJudge(Judge):
    """Zero-shot CLIP over the 1000 OpenAI class names and prompt templates.

    ``model`` is a :class:`~imagenet_hard.models.zero_shot.ZeroShotClassifier` (from
    ``create_model``) or a bare CLIP-like model with its ``tokenizer`` (the head is then built
    here, once, under the judge's autocast). ``normalization="clip"`` uses ``mean_std`` (the
    weights' own, OpenAI's by default); ``"imagenet"`` reproduces the authors' mining script.
    Models trained at another input size (ViT-L/14@336) see the 224 crops resized (bicubic).
    A model holding fp16 weights (``clip.load``'s, the ``paper`` protocol's fp16) runs without
    autocast; :attr:`weights_dtype` says so.
    """

    def __init__(self, name: str, model, tokenizer: Callable | None = None, device=None,
                 normalization: str = "clip", precision: str = "auto",
                 text_weights: torch.Tensor | None = None, mean_std=(CLIP_MEAN, CLIP_STD)):
        if normalization not in NORMALIZATIONS:
            raise unknown_name("normalization", normalization, NORMALIZATIONS)
        mean, std = mean_std if normalization == "clip" else (IMAGENET_MEAN, IMAGENET_STD)
        super().__init__(name, device=device, mean=mean, std=std, precision=precision)
        self.normalization = normalization
        if not isinstance(model, ZeroShotClassifier):
            model = model.eval().to(self.device)
            if text_weights is None:
                with torch.autocast(self.device.type, dtype=self.amp_dtype,
                                    enabled=self.amp_dtype is not None):
                    text_weights = zero_shot_head(model, tokenizer, device=self.device)
            model = ZeroShotClassifier(model, text_weights)
        self.classifier = model.eval().to(self.device)
        self.model_size = self.classifier.image_size
        # channels_last where the image tower convolves (ViT's patch stem, a ResNet tower
        # throughout), as classifier judges run: cuDNN's bf16/fp16 kernels and oneDNN's want
        # NHWC. Only 4-D weights change layout; their dtype (clip.load's fp16 too) stays.
        visual = getattr(self.classifier.clip, "visual", None)
        self.channels_last = visual is not None and any(
            isinstance(m, torch.nn.Conv2d) for m in visual.modules())
        if self.channels_last:
            visual.to(memory_format=torch.channels_last)
        if self.classifier.input_dtype != torch.float32:
            # Low-precision weights (clip.load's fp16) compute in their own dtype: autocast
            # would only re-cast what the model's code already casts.
            self.amp_dtype = None
            self.weights_dtype = self.classifier.input_dtype

    @property
    def text_weights(self) -> torch.Tensor:
        """The class head (1000, D), unit rows: float32, or float16 with clip.load's logits."""
        return self.classifier.text_weights

    def compile_target(self) -> torch.nn.Module:
        return self.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.model_size:
            x = torch.nn.functional.interpolate(x, size=self.model_size, mode="bicubic",
                                                antialias=True, align_corners=False)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._model(self.classifier)(x)
