"""``timm:NAME`` judges: any timm ImageNet-1k classifier with its pretrained weights."""

from __future__ import annotations

import difflib
from pathlib import Path

from ..errors import ImHardError, InvalidValueError, UnknownNameError
from .base import ModuleJudge
from .offline import download, hf_file, missing, torch_checkpoints_dir


def create_timm_judge(name: str, device=None, weights: str | None = None,
                      precision: str = "auto") -> ModuleJudge:
    """``timm.create_model(name, pretrained=True)`` (or from a local ``weights`` file)."""
    import timm

    if not timm.is_model(name):
        base = name.split(".")[0]
        known = timm.list_models()
        close = difflib.get_close_matches(base, known, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"timm has no model {name!r}.{hint} List them with "
                               "timm.list_models('*pattern*', pretrained=True).")
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError as exc:  # an unknown tag ("resnet18.nope")
        tags = timm.list_pretrained(f"{name.split('.')[0]}.*")
        raise UnknownNameError(f"timm has no weights {name!r}; published: "
                               f"{', '.join(tags) or 'none'}") from exc
    source = (cfg.hf_hub_id or cfg.url or cfg.file) if cfg is not None else None
    if not source and not weights:
        # timm would warn and return random weights: a judge that silently guesses.
        raise InvalidValueError(f"timm:{name} has no published pretrained weights; pick a "
                                "tagged model (timm.list_models(pretrained=True)) or pass --weights")
    what = f"timm:{name} ({source or 'no published weights'})"
    provide = ("copy the model's Hugging Face hub cache into HF_HOME (or set HF_HUB_CACHE), or "
               "pass a local checkpoint file with --weights PATH")
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise missing(what, [str(path)], "check the --weights path")
    elif cfg.hf_hub_id:
        path = hf_file(cfg.hf_hub_id, [cfg.hf_hub_filename or "model.safetensors",
                                       "pytorch_model.bin"], what, provide)
    elif cfg.url:
        path = torch_checkpoints_dir() / Path(cfg.url).name
        if not path.is_file():
            download(cfg.url, path, what, provide)
    else:  # a pretrained cfg that names a local file
        path = Path(cfg.file).expanduser()
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    except ImHardError:
        raise
    except Exception as exc:  # every failure here is a failure to obtain or read the weights
        raise missing(what, [str(path)], provide, exc) from exc
    if model.num_classes != 1000:
        raise InvalidValueError(f"timm:{name} outputs {model.num_classes} classes; a judge must "
                                "output the 1000 ImageNet-1k classes (pick an in1k checkpoint)")
    data = model.pretrained_cfg
    return ModuleJudge(f"timm:{name}", model, device=device, mean=data["mean"], std=data["std"],
                       precision=precision)
