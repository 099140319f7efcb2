"""The one zero-shot head for CLIP-like models (judges, reference submissions, any open_clip model).

Each class's text embedding is the normalised mean of the normalised embeddings of
``template.format(name)`` over the templates (OpenAI's 80 over its 1000 curated names by
default); logits = 100 · cos(image, class) (paper appendix A.4). The image tower runs in whatever autocast
context the caller holds, so a judge gets it in its own precision; the final ``100 · cos`` is
always computed in float32, autocast or not (in fp16 its resolution near 100·0.3 is 0.03, enough
to reorder near-tied classes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..labels import clip_names, clip_templates

LOGIT_SCALE = 100.0


def zero_shot_head(model, tokenizer: Callable, classnames: Sequence[str] | None = None,
                   templates: Sequence[str] | None = None, device=None,
                   classes_per_batch: int = 10) -> torch.Tensor:
    """Class text embeddings (C, D), float32, unit norm, for a model with ``encode_text``."""
    classnames = list(clip_names() if classnames is None else classnames)
    templates = list(clip_templates() if templates is None else templates)
    device = device or next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(classnames), classes_per_batch):
            names = classnames[start:start + classes_per_batch]
            tokens = tokenizer([t.format(n) for n in names for t in templates]).to(device)
            emb = model.encode_text(tokens).float()
            emb = emb / emb.norm(dim=-1, keepdim=True)
            emb = emb.view(len(names), len(templates), -1).mean(dim=1)
            out.append(emb / emb.norm(dim=-1, keepdim=True))
    return torch.cat(out).float()


def random_head(embed_dim: int, classes: int = 1000, seed: int = 0) -> torch.Tensor:
    """A seeded random unit-norm head: the FLOPs of a real one, for timing random models."""
    gen = torch.Generator().manual_seed(seed)
    head = torch.randn((classes, embed_dim), generator=gen)
    return head / head.norm(dim=-1, keepdim=True)


class ZeroShotClassifier(torch.nn.Module):
    """A CLIP-like model and its class head: images (N, 3, H, W) → logits (N, C) float32."""

    def __init__(self, clip, text_weights: torch.Tensor, logit_scale: float = LOGIT_SCALE):
        super().__init__()
        self.clip = clip
        self.logit_scale = float(logit_scale)
        self.register_buffer("text_weights", text_weights.float(), persistent=False)

    @property
    def image_size(self) -> tuple[int, int]:
        """The input size the image tower was built for (H, W)."""
        size = getattr(getattr(self.clip, "visual", None), "image_size", 224)
        return tuple(size) if isinstance(size, (tuple, list)) else (size, size)

    @property
    def input_dtype(self) -> torch.dtype:
        """The image tower's low precision (fp16/bf16) if its weight matrices have one, else
        float32. Not the model's first parameter: open_clip's fp16 conversion (like clip.load's)
        leaves embeddings and LayerNorms float32 while the patch convolution is half."""
        visual = getattr(self.clip, "visual", self.clip)
        for p in visual.parameters():
            if p.is_floating_point() and p.dim() >= 2 and p.dtype != torch.float32:
                return p.dtype
        return torch.float32

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Half-precision weights (open_clip precision="fp16", like clip.load on CUDA) take
        # half inputs; under autocast the weights are float32 and inputs stay as they are.
        emb = self.clip.encode_image(images.to(self.input_dtype)).float()
        with torch.autocast(emb.device.type, enabled=False):
            emb = emb / emb.norm(dim=-1, keepdim=True)
            return self.logit_scale * emb @ self.text_weights.T
