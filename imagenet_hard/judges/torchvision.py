"""``torchvision:NAME`` judges: a torchvision classifier with its default (IMAGENET1K) weights."""

from __future__ import annotations

import difflib
from pathlib import Path

from ..errors import InvalidValueError, UnknownNameError
from .base import ModuleJudge
from .offline import download, missing, torch_checkpoints_dir


def classification_models() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def create_torchvision_judge(name: str, device=None, weights: str | None = None,
                             precision: str = "auto") -> ModuleJudge:
    """``torchvision.models.get_model(name)`` with its DEFAULT weights, or a local ``weights`` file."""
    import torch
    import torchvision.models as tvm

    known = classification_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"torchvision has no classification model {name!r}.{hint} "
                               f"Known: {', '.join(known)}.")
    enum = tvm.get_model_weights(name).DEFAULT
    if len(enum.meta.get("categories", [])) != 1000:
        raise InvalidValueError(f"torchvision:{name} default weights do not cover the 1000 "
                                "ImageNet-1k classes")
    model = tvm.get_model(name, weights=None)
    path = Path(weights) if weights else torch_checkpoints_dir() / Path(enum.url).name
    what = f"torchvision:{name} ({enum})"
    provide = (f"put {Path(enum.url).name} (from {enum.url}) in {path.parent} (or set TORCH_HOME), "
               f"or pass a local state-dict file with --weights PATH")
    if not path.is_file():
        if weights:
            raise missing(what, [str(path)], provide)
        download(enum.url, path, what, provide)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    mean, std = _mean_std(enum)
    return ModuleJudge(f"torchvision:{name}", model, device=device, mean=mean, std=std,
                       precision=precision)


def _mean_std(enum) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation the weights' own eval transform applies (ImageNet's for all today)."""
    transform = enum.transforms()
    return tuple(transform.mean), tuple(transform.std)
