"""Judges: the classifiers that decide whether a zoomed crop is classified correctly.

``create_judge(spec)`` builds a judge around any model of :mod:`imagenet_hard.models`
(``clip-vit-l-14``, ``efficientnet-lite0``, ``open_clip:ARCH/TAG``, ``torchvision:NAME``,
``timm:NAME`` …) or calls a judge factory registered by name (third-party judges arrive through
the ``imagenet_hard.judges`` entry-point group). Every judge takes uint8 ``(N, 3, 224, 224)``
crops and returns float32 ``(N, 1000)`` ImageNet-1k logits (see :class:`Judge`).

This package's root imports no torch, so a command can check ``--judge`` before loading it;
``Judge`` and the other classes are imported when first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..errors import UnknownNameError, did_you_mean
from ..models import MODEL_FAMILIES, check_spec, family, parse_spec
from ..registry import Registry, normalize_name

#: The paper's judge (CLIP ViT-L/14, OpenAI's weights, zero-shot); the one default every command and function uses.
DEFAULT_JUDGE = "clip-vit-l-14"

#: name → judge factory ``(device=None, **kw) -> Judge`` for judges that are not a model spec
#: (plugins, tests); every model of :mod:`imagenet_hard.models` is a judge without registering.
JUDGES: Registry[Callable] = Registry("judge", "imagenet_hard.judges")

_LAZY = {"Judge": ".base", "ModuleJudge": ".base", "amp_dtype": ".base", "PRECISIONS": ".base",
         "ClipJudge": ".clip", "NORMALIZATIONS": ".clip", "ScriptedJudge": ".scripted"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_judge(name: str):
    """Decorator: register a judge factory ``(device=None, **kw) -> Judge`` under ``name``."""
    return JUDGES.register(name)


def check_judge(spec: str) -> str:
    """The judge spec as mining records it (a registered name normalised, a ``family:name`` spec
    as written), or an error naming close matches; imports no torch."""
    spec = spec.strip()
    if ":" not in spec and spec in JUDGES:
        return normalize_name(spec)
    if ":" not in spec and spec not in MODEL_FAMILIES:
        known = list_judges()
        hint = did_you_mean(normalize_name(spec), known)
        raise UnknownNameError(f"unknown judge {spec!r}.{hint} Known: {', '.join(known)}, or a "
                               "model spec such as timm:NAME (see `imhard models`).")
    check_spec(spec)
    return spec if ":" in spec else normalize_name(spec)


#: What :func:`judge_kind` says of a judge registered by name (not a model spec): its factory
#: decides how it normalises.
REGISTERED = "registered"


def judge_kind(spec: str) -> str:
    """``zero-shot`` (a CLIP-like model), ``classifier`` or ``registered`` (a judge factory
    registered by name), from the spec alone: no torch, no weights."""
    name = check_judge(spec)
    if ":" not in name and name in JUDGES:
        return REGISTERED
    return family(parse_spec(name)[0]).kind


def create_judge(spec: str = DEFAULT_JUDGE, device=None, **kwargs):
    """Build the judge ``spec`` on ``device`` (``None`` or ``"auto"``: CUDA when available).

    Keyword arguments: ``weights`` (a local checkpoint), ``precision`` (autocast: fp32, bf16,
    fp16, or auto: bf16 on CUDA where supported, else fp16, and fp32 elsewhere),
    ``normalization`` (zero-shot judges: ``clip`` or ``imagenet``). A registered factory gets
    them as keywords and honours them itself. Mining resolves them from its protocol
    (:mod:`imagenet_hard.mining_protocol`).
    """
    name = check_judge(spec)
    if ":" not in name and name in JUDGES:
        return JUDGES.get(name)(device=device, **kwargs)
    from .factory import judge_from_spec

    return judge_from_spec(name, device=device, **kwargs)


def list_judges(pattern: str = "*") -> list[str]:
    """Judge names matching a wildcard: registered judges and single-model families (families
    such as ``timm:NAME`` are open-ended; see ``imhard models``)."""
    singles = [n for n in MODEL_FAMILIES.names(pattern)
               if not family(n).takes_name]
    return sorted(set(JUDGES.names(pattern)) | set(singles))


__all__ = ["DEFAULT_JUDGE", "JUDGES", "REGISTERED", "check_judge", "create_judge", "judge_kind",
           "list_judges", "register_judge", *_LAZY]
