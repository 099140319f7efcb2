"""``timm:NAME[.TAG]``: a timm ImageNet-1k classifier with its pretrained weights.

The weights come from the Hugging Face hub cache (downloaded when the hub answers), the URL of
older configs (into the torch hub cache), or a local file ``weights``. The preprocessing is the
pretrained config's eval transform (resize ``floor(size / crop_pct)``, centre crop ``size``).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import ImHardError, InvalidValueError, UnknownNameError, did_you_mean
from . import Model, ModelInfo
from .preprocess import Preprocess
from .weights import download, hf_file, missing, torch_checkpoints_dir


def list_names(pattern: str = "*") -> list[str]:
    import timm

    return timm.list_models(pattern, pretrained=True)


def _pretrained_cfg(name: str):
    import timm

    if not timm.is_model(name):
        hint = did_you_mean(name.split(".")[0], timm.list_models(), cutoff=0.6)
        raise UnknownNameError(f"timm has no model {name!r}.{hint} List them with "
                               "`imhard models timm '*pattern*'`.")
    try:
        return timm.models.get_pretrained_cfg(name)
    except RuntimeError as exc:  # an unknown tag ("resnet18.nope")
        tags = timm.list_pretrained(f"{name.split('.')[0]}.*")
        raise UnknownNameError(f"timm has no weights {name!r}; published: "
                               f"{', '.join(tags) or 'none'}") from exc


def _weights_file(name: str, cfg, weights: str | None) -> Path:
    source = (cfg.hf_hub_id or cfg.url or cfg.file) if cfg is not None else None
    if not source and not weights:
        # timm would warn and return random weights: a model that silently guesses.
        raise InvalidValueError(f"timm:{name} has no published pretrained weights; pick a tagged "
                                "model (`imhard models timm`) or pass a local checkpoint (`imhard mine "
                                "--weights PATH`, or weights=PATH in Python)")
    what = f"timm:{name} ({source or 'no published weights'})"
    provide = (f"download them where the network is reachable (`hf download {cfg.hf_hub_id}`) "
               "and copy that Hugging Face cache into HF_HOME (or set HF_HUB_CACHE), or pass a "
               "local checkpoint file (`imhard mine --weights PATH`, or weights=PATH in Python)"
               if cfg is not None and cfg.hf_hub_id else
               "pass a local checkpoint file (`imhard mine --weights PATH`, or weights=PATH in "
               "Python)")
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise missing(what, [str(path)], "check the --weights path")
        return path
    if cfg.hf_hub_id:
        return hf_file(cfg.hf_hub_id, [cfg.hf_hub_filename or "model.safetensors",
                                       "pytorch_model.bin"], what, provide)
    if cfg.url:
        path = torch_checkpoints_dir() / Path(cfg.url).name
        return path if path.is_file() else download(cfg.url, path, what, provide)
    return Path(cfg.file).expanduser()  # a pretrained cfg that names a local file


def _preprocess(name: str, model) -> Preprocess:
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    size = cfg["input_size"][-1]
    if cfg["input_size"][-2] != size or cfg.get("crop_mode", "center") not in ("center", "squash"):
        raise InvalidValueError(f"timm:{name} uses input {cfg['input_size']} with crop mode "
                                f"{cfg.get('crop_mode')!r}; pass preprocess=Preprocess(...)")
    resize = math.floor(size / (cfg.get("crop_pct") or 0.875))
    return Preprocess(resize, size, cfg["interpolation"], tuple(cfg["mean"]), tuple(cfg["std"]),
                      squash=cfg.get("crop_mode") == "squash")


def create_timm_model(name: str, device=None, weights: str | None = None) -> Model:
    """``timm.create_model(NAME, pretrained=True)`` with the weights file found offline-first."""
    import timm

    cfg = _pretrained_cfg(name)
    path = _weights_file(name, cfg, weights)
    try:
        module = timm.create_model(name, pretrained=True,
                                   pretrained_cfg_overlay={"file": str(path)})
    except ImHardError:
        raise
    except Exception as exc:  # every failure here is a failure to obtain or read the weights
        raise missing(f"timm:{name}", [str(path)], "pass a checkpoint of this model "
                      "(`imhard mine --weights PATH`, or weights=PATH in Python)", exc) from exc
    if module.num_classes != 1000:
        raise InvalidValueError(f"timm:{name} outputs {module.num_classes} classes; pick an "
                                "ImageNet-1k checkpoint (the 1000 classes)")
    pcfg = module.pretrained_cfg
    full = f"{pcfg['architecture']}.{pcfg['tag']}" if pcfg.get("tag") else name
    module = module.eval().to(device or "cpu")
    info = ModelInfo("timm", full, str(path), sum(p.numel() for p in module.parameters()))
    return Model(f"timm:{full}", module, _preprocess(name, module), info)
