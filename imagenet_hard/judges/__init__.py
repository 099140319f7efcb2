"""Judges: the classifiers that decide whether a zoomed crop is classified correctly.

``create_judge(spec)`` resolves a registered name (``clip-vit-l-14``, ``efficientnet-lite0``,
third-party names from the ``imagenet_hard.judges`` entry-point group) or a ``family:name`` spec
(``open_clip:ARCH/TAG``, ``torchvision:NAME``, ``timm:NAME``); the heavy import happens only in
the chosen family's branch. Every judge takes uint8 ``(N, 3, 224, 224)`` crops and returns float32
``(N, 1000)`` ImageNet-1k logits (see :class:`Judge`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UnknownNameError
from ..registry import Registry
from .base import Judge, ModuleJudge, resolve_device
from .scripted import ScriptedJudge

DEFAULT_JUDGE = "clip-vit-l-14"


def _builtins() -> None:
    from .clip import create_clip_vit_l_14_judge
    from .efficientnet import create_efficientnet_lite0_judge

    JUDGES.register("clip-vit-l-14")(create_clip_vit_l_14_judge)
    JUDGES.register("efficientnet-lite0")(create_efficientnet_lite0_judge)


#: name → factory ``(device=..., **kw) -> Judge``. Plugins register factories the same way.
JUDGES: Registry[Callable[..., Judge]] = Registry("judge", "imagenet_hard.judges", _builtins)


def register_judge(name: str):
    """Decorator: register a judge factory ``(device=None, **kw) -> Judge`` under ``name``."""
    return JUDGES.register(name)


def _family(prefix: str) -> Callable[..., Judge]:
    key = prefix.strip().lower().replace("-", "_")
    if key in ("open_clip", "openclip"):
        from .clip import create_open_clip_judge
        return create_open_clip_judge
    if key == "torchvision":
        from .torchvision import create_torchvision_judge
        return create_torchvision_judge
    if key == "timm":
        from .timm import create_timm_judge
        return create_timm_judge
    raise UnknownNameError(f"unknown judge family {prefix!r}; known: open_clip:ARCH/TAG, "
                           "torchvision:NAME, timm:NAME")


FAMILIES = ("open_clip", "torchvision", "timm")


def create_judge(spec: str = DEFAULT_JUDGE, device="cpu", **kwargs) -> Judge:
    """Build the judge ``spec`` on ``device`` (``None`` or ``"auto"``: cuda when available).

    Keyword arguments go to the factory: ``weights`` (a local checkpoint), ``precision``
    (auto/fp32/bf16/fp16), ``normalization`` (CLIP judges: ``clip`` or ``imagenet``).
    """
    spec = spec.strip()
    if ":" in spec:
        prefix, _, name = spec.partition(":")
        return _family(prefix)(name, device=device, **kwargs)
    return JUDGES.get(spec)(device=device, **kwargs)


def list_judges(pattern: str = "*") -> list[str]:
    """Registered judge names matching a wildcard (family specs are open-ended, not listed)."""
    return JUDGES.names(pattern)


__all__ = ["DEFAULT_JUDGE", "FAMILIES", "JUDGES", "Judge", "ModuleJudge", "ScriptedJudge",
           "create_judge", "list_judges", "register_judge", "resolve_device"]
