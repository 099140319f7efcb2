"""The one zero-shot head for CLIP-like models (judges, reference submissions, any open_clip model).

Each class's text embedding is the normalised mean of the normalised embeddings of
``template.format(name)`` over the templates (OpenAI's 80 over its 1000 curated names by
default); logits = 100 · cos(image, class) (paper appendix A.4). The image tower runs in whatever autocast
context the caller holds, so a judge gets it in its own precision; the final ``100 · cos`` is
computed in float32, autocast or not (in fp16 its resolution near 100·0.3 is 0.03, enough
to reorder near-tied classes).

The one exception is :func:`convert_weights_clip_load` with ``logits_dtype=torch.float16``: the
arithmetic of ``clip.load`` on CUDA as the authors' ``eval-CLIP.py`` ran it (fp16 weights by
OpenAI's ``convert_weights``, the head normalised and averaged in fp16, ``100.0 *
image_features @ zeroshot_weights`` in fp16), which the ``paper`` mining protocol reproduces,
near-ties and all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..labels import clip_names, clip_templates

LOGIT_SCALE = 100.0


def zero_shot_head(model, tokenizer: Callable, classnames: Sequence[str] | None = None,
                   templates: Sequence[str] | None = None, device=None,
                   classes_per_batch: int = 10, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Class text embeddings (C, D), unit norm, for a model with ``encode_text``: normalised,
    averaged and normalised again in ``dtype`` (float32; float16 is ``eval-CLIP.py``'s
    ``zeroshot_classifier`` on ``clip.load``'s fp16 model) and returned in it."""
    classnames = list(clip_names() if classnames is None else classnames)
    templates = list(clip_templates() if templates is None else templates)
    device = device or next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(classnames), classes_per_batch):
            names = classnames[start:start + classes_per_batch]
            tokens = tokenizer([t.format(n) for n in names for t in templates]).to(device)
            emb = model.encode_text(tokens).to(dtype)
            emb = emb / emb.norm(dim=-1, keepdim=True)
            emb = emb.view(len(names), len(templates), -1).mean(dim=1)
            out.append(emb / emb.norm(dim=-1, keepdim=True))
    return torch.cat(out).to(dtype)


def random_head(embed_dim: int, classes: int = 1000, seed: int = 0) -> torch.Tensor:
    """A seeded random unit-norm head: the FLOPs of a real one, for timing random models."""
    gen = torch.Generator().manual_seed(seed)
    head = torch.randn((classes, embed_dim), generator=gen)
    return head / head.norm(dim=-1, keepdim=True)


def convert_weights_clip_load(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (in place) with the parameters OpenAI's ``clip.model.convert_weights`` makes
    fp16: every Conv1d/Conv2d/Linear weight and bias, ``nn.MultiheadAttention``'s
    ``in/q/k/v_proj_weight``, ``in_proj_bias``, ``bias_k``, ``bias_v``, and any module's
    ``text_projection`` and ``proj``. The rest stays float32 — LayerNorm, embeddings, the class
    token, ``logit_scale`` — and each module's own forward decides what to do with a half input
    (open_clip's ``LayerNormFp32``, built by ``precision="fp16"``, computes in float32 and
    returns half, as OpenAI's ``LayerNorm`` does).

    open_clip's ``convert_weights_to_lp`` differs in two ways: it also converts its own
    ``Attention`` class (absent from OpenAI's architectures), and it converts ``text_projection``
    only on ``CLIP``/``TextTransformer`` and ``proj`` only on ``VisionTransformer`` where OpenAI
    converts those names on any module. On OpenAI's architectures (ViT-B/32 … ViT-L/14) both
    convert the same tensors; this one applies OpenAI's rule everywhere.
    """
    half = torch.float16

    def convert(module: torch.nn.Module) -> None:
        if isinstance(module, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Linear):
            module.weight.data = module.weight.data.to(half)
            if module.bias is not None:
                module.bias.data = module.bias.data.to(half)
        if isinstance(module, torch.nn.MultiheadAttention):
            for attr in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
                         "in_proj_bias", "bias_k", "bias_v"):
                tensor = getattr(module, attr, None)
                if tensor is not None:
                    tensor.data = tensor.data.to(half)
        for attr in ("text_projection", "proj"):
            tensor = getattr(module, attr, None)
            if isinstance(tensor, torch.Tensor):
                tensor.data = tensor.data.to(half)

    model.apply(convert)
    return model


class ZeroShotClassifier(torch.nn.Module):
    """A CLIP-like model and its class head: images (N, 3, H, W) → logits (N, C).

    ``logits_dtype`` float32 (the default): logits float32, computed outside autocast.
    float16 (``clip.load``'s arithmetic, with fp16 weights): the image embedding normalised and
    ``100 · emb @ head`` computed in fp16, as ``eval-CLIP.py``; the logits are fp16 values.
    """

    def __init__(self, clip, text_weights: torch.Tensor, logit_scale: float = LOGIT_SCALE,
                 logits_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.clip = clip
        self.logit_scale = float(logit_scale)
        self.logits_dtype = logits_dtype
        self.register_buffer("text_weights", text_weights.to(logits_dtype), persistent=False)

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
        emb = self.clip.encode_image(images.to(self.input_dtype)).to(self.logits_dtype)
        with torch.autocast(emb.device.type, enabled=False):
            emb = emb / emb.norm(dim=-1, keepdim=True)
            return self.logit_scale * emb @ self.text_weights.T
