"""Judges from model specs: ``create_model(spec)`` wrapped as a :class:`~.base.ModuleJudge` or,
for a zero-shot model, a :class:`~.clip.ClipJudge` (its own module so ``base`` and ``clip`` stay
free of each other)."""

from __future__ import annotations

import torch

from ..devices import resolve_device
from ..errors import InvalidValueError
from .base import Judge, ModuleJudge, amp_dtype
from .clip import ClipJudge


def judge_from_spec(spec: str, device=None, precision: str = "auto",
                    normalization: str | None = None, weights: str | None = None,
                    clip_load_fp16: bool = False) -> Judge:
    """The judge around ``create_model(spec)``. The model is built inside the judge's autocast,
    so a zero-shot head is computed in the precision the crops will be judged in.

    ``clip_load_fp16`` (a zero-shot judge at ``precision="fp16"``; the ``paper`` mining
    protocol): no autocast, but ``clip.load``'s fp16 weights, head and logits
    (:func:`imagenet_hard.models.zero_shot.convert_weights_clip_load`)."""
    from ..models import create_model, family, parse_spec

    dev = resolve_device(device)
    if clip_load_fp16:
        if precision != "fp16" or family(parse_spec(spec)[0]).kind != "zero-shot":
            raise InvalidValueError(f"clip.load's fp16 weights apply to zero-shot (CLIP) judges "
                                    f"at precision fp16; {spec} at {precision} cannot have them")
        model = create_model(spec, device=dev, weights=weights, clip_load_fp16=True)
        return ClipJudge(spec, model.module, device=dev, normalization=normalization or "clip",
                         precision=precision, mean_std=(model.mean, model.std))
    amp = amp_dtype(dev, precision)
    with torch.autocast(dev.type, dtype=amp, enabled=amp is not None):
        model = create_model(spec, device=dev, weights=weights)
    if model.info.kind == "zero-shot":
        return ClipJudge(spec, model.module, device=dev, normalization=normalization or "clip",
                         precision=precision, mean_std=(model.mean, model.std))
    if normalization is not None:
        raise InvalidValueError(f"normalization {normalization!r} applies to zero-shot (CLIP) "
                                f"judges; {spec} uses its weights' own mean/std")
    return ModuleJudge(spec, model.module, device=dev, mean=model.mean, std=model.std,
                       precision=precision)
