"""``torchvision:NAME[.WEIGHTS]``: a torchvision classifier with its DEFAULT or named weights.

``.WEIGHTS`` names a member of the model's weights enum (``resnet50.IMAGENET1K_V1``; the authors'
``pretrained=True`` meant V1). The preprocessing is the weights' own eval transform (resize,
centre crop, ImageNet mean/std), stated as a :class:`~.preprocess.Preprocess`.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import torch

from ..errors import ImHardError, InvalidValueError, UnknownNameError, did_you_mean
from . import Model, ModelInfo
from .preprocess import Preprocess
from .weights import download, missing, torch_checkpoints_dir


def classification_models() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def list_names(pattern: str = "*") -> list[str]:
    """Every ``NAME.WEIGHTS`` torchvision offers for ImageNet-1k classification."""
    import torchvision.models as tvm

    names = [f"{arch}.{w.name}" for arch in classification_models()
             for w in tvm.get_model_weights(arch)]
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def _weights_enum(arch: str, tag: str):
    import torchvision.models as tvm

    known = classification_models()
    if arch not in known:
        hint = did_you_mean(arch, known)
        raise UnknownNameError(f"torchvision has no classification model {arch!r}.{hint} "
                               f"Known: {', '.join(known)}.")
    enum = tvm.get_model_weights(arch)
    if not tag or tag == "DEFAULT":
        return enum.DEFAULT
    try:
        return enum[tag]
    except KeyError:
        raise UnknownNameError(f"torchvision:{arch} has no weights {tag!r}; published: "
                               f"{', '.join(w.name for w in enum)}") from None


def _preprocess(enum) -> Preprocess:
    """The weights' own eval transform (ImageClassification) as a Preprocess."""
    t = enum.transforms()
    return Preprocess(int(t.resize_size[0]), int(t.crop_size[0]), t.interpolation.value,
                      tuple(t.mean), tuple(t.std))


def create_torchvision_model(name: str, device=None, weights: str | None = None) -> Model:
    """``torchvision.models.get_model(NAME)`` with the weights' state dict from the torch hub
    cache (downloaded when the network answers) or from the local file ``weights``."""
    import torchvision.models as tvm

    arch, _, tag = name.partition(".")
    enum = _weights_enum(arch, tag)
    if len(enum.meta.get("categories", [])) != 1000:
        raise InvalidValueError(f"torchvision:{arch}.{enum.name} does not cover the 1000 "
                                "ImageNet-1k classes")
    filename = Path(enum.url).name
    path = Path(weights).expanduser() if weights else torch_checkpoints_dir() / filename
    what = f"torchvision:{arch}.{enum.name} ({filename})"
    provide = (f"put {filename} (from {enum.url}) in {torch_checkpoints_dir()} (or set "
               "TORCH_HOME), or pass a local state-dict file (`imhard mine --weights PATH`, or "
               "weights=PATH in Python)")
    if not path.is_file():
        if weights:
            raise missing(what, [str(path)], provide)
        download(enum.url, path, what, provide)
    module = tvm.get_model(arch, weights=None)
    try:
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except ImHardError:
        raise
    except Exception as exc:  # not a state dict of this architecture
        raise missing(what, [str(path)], provide, exc) from exc
    module = module.eval().to(device or "cpu")
    info = ModelInfo("torchvision", f"{arch}.{enum.name}", str(path),
                     sum(p.numel() for p in module.parameters()))
    return Model(f"torchvision:{arch}.{enum.name}", module, _preprocess(enum), info)
