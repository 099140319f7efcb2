"""``open_clip:ARCH/TAG``, ``open_clip:ARCH/PATH``, ``open_clip:ARCH/random`` and
``clip-vit-l-14``: open_clip models as zero-shot ImageNet-1k classifiers.

A published tag's weights come from the Hugging Face hub cache (or ``~/.cache/clip`` for URL
weights); a path is a local open_clip checkpoint. Tags trained with QuickGELU (OpenAI's) get it
whatever the architecture name says: open_clip would only warn and build GELU, which is not the
model that was trained. ``random`` builds ARCH with random weights and a random head: the FLOPs of
the trained model, for timing where weights cannot be had (``imhard bench mine``).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import ImHardError, InvalidValueError, UnknownNameError, did_you_mean
from . import Model, ModelInfo
from .preprocess import PRECISIONS, Preprocess
from .weights import download, hf_file, hub_cache, missing
from .zero_shot import ZeroShotClassifier, convert_weights_clip_load, random_head, zero_shot_head

RANDOM = "random"
#: The paper's judge and the 1.86 % reference: OpenAI's ViT-L/14 weights.
CLIP_VIT_L_14 = ("ViT-L-14", "openai")


def list_names(pattern: str = "*") -> list[str]:
    import open_clip

    names = [f"{arch}/{tag}" for arch, tag in open_clip.list_pretrained()]
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def _check_arch(arch: str) -> None:
    import open_clip

    archs = open_clip.list_models()
    if arch not in archs:
        hint = did_you_mean(arch, archs)
        raise UnknownNameError(f"open_clip has no architecture {arch!r}.{hint} "
                               "List them with `imhard models open_clip`.")


def create_open_clip_model(name: str, device=None, weights: str | None = None,
                           precision: str = "fp32", quick_gelu: bool | None = None,
                           classnames: Sequence[str] | None = None,
                           templates: Sequence[str] | None = None,
                           clip_load_fp16: bool = False) -> Model:
    """``ARCH/TAG`` (published weights), ``ARCH/PATH`` (a checkpoint; ``weights`` overrides
    the part after the slash) or ``ARCH/random``; ``precision`` is open_clip's weight precision
    (``fp16`` is what ``clip.load`` gives on CUDA). ``clip_load_fp16``: ``clip.load``'s whole
    arithmetic as ``eval-CLIP.py`` ran it — fp16 weights by OpenAI's rule
    (:func:`~.zero_shot.convert_weights_clip_load`, on open_clip's fp16 build whose LayerNorms
    compute in float32), and the class head and logits in fp16 too."""
    import open_clip

    arch, _, pretrained = name.partition("/")
    pretrained = weights or pretrained or None
    _check_arch(arch)
    if precision not in PRECISIONS:
        raise InvalidValueError(f"precision must be one of {', '.join(PRECISIONS)}, "
                                f"got {precision!r}")
    if pretrained is None:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise UnknownNameError(f"open_clip:{arch} needs weights: open_clip:{arch}/TAG with TAG in "
                               f"{', '.join(tags) or '(none published)'}, open_clip:{arch}/PATH, "
                               f"or open_clip:{arch}/random for timing")
    device = device or "cpu"
    if clip_load_fp16:
        precision = "fp16"
    if pretrained == RANDOM:
        # Seeded on the CPU, so every build of ARCH/random holds the same weights whatever
        # the device or precision (a comparison of two precisions compares arithmetic only).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            clip = open_clip.create_model(arch, pretrained=None, precision=precision,
                                          device="cpu", force_quick_gelu=bool(quick_gelu))
        clip = clip.to(device)
        head, source = random_head(clip.visual.output_dim), "random (timing only)"
    else:
        clip, source = _load(arch, pretrained, quick_gelu, precision, device)
    if clip_load_fp16:
        convert_weights_clip_load(clip)
    if pretrained != RANDOM:
        head = zero_shot_head(clip, _tokenizer(arch), classnames, templates, device=device,
                              dtype=torch.float16 if clip_load_fp16 else torch.float32)
    logits_dtype = torch.float16 if clip_load_fp16 else torch.float32
    module = ZeroShotClassifier(clip.eval(), head, logits_dtype=logits_dtype).to(device)
    info = ModelInfo("open-clip", f"{arch}/{pretrained}", source,
                     sum(p.numel() for p in clip.parameters()), kind="zero-shot")
    return Model(f"open_clip:{arch}/{pretrained}", module, _preprocess(clip, arch), info)


def create_clip_vit_l_14(name: str = "", device=None, weights: str | None = None,
                         **kwargs) -> Model:
    """OpenAI CLIP ViT-L/14 (``weights``: a local copy of OpenAI's checkpoint, QuickGELU)."""
    arch, tag = CLIP_VIT_L_14
    model = create_open_clip_model(f"{arch}/{tag}", device=device, weights=weights,
                                   quick_gelu=True, **kwargs)
    info = ModelInfo("clip-vit-l-14", "", model.info.weights, model.info.params, "zero-shot")
    return Model("clip-vit-l-14", model.module, model.preprocess, info)


def _load(arch: str, pretrained: str, quick_gelu: bool | None, precision: str, device):
    """(model with its weights, where they came from), or a MissingWeightsError saying what to
    do."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if cfg:
        path = _tag_file(arch, pretrained, cfg)
        if quick_gelu is None:
            quick_gelu = bool(cfg.get("quick_gelu", False))  # open_clip only warns on a mismatch
    else:
        path = Path(pretrained).expanduser()
        if not (os.sep in pretrained or path.suffix):
            tags = open_clip.list_pretrained_tags_by_model(arch)
            raise UnknownNameError(f"{pretrained!r} is neither a published open_clip tag for "
                                   f"{arch} ({', '.join(tags) or 'none'}) nor a checkpoint path")
        if not path.is_file():
            raise missing(f"open_clip:{arch}", [str(path)], "check the checkpoint path")
        if quick_gelu is None:
            quick_gelu = arch.endswith("-quickgelu")
    try:
        model = open_clip.create_model(arch, pretrained=str(path), precision=precision,
                                       device=device, force_quick_gelu=quick_gelu)
    except ImHardError:
        raise
    except Exception as exc:  # a file that is not a checkpoint of this architecture
        raise missing(f"open_clip:{arch}/{pretrained}", [str(path)],
                      "pass a checkpoint of this architecture (open_clip state dict)", exc) from exc
    return model, str(path)


def _tag_file(arch: str, tag: str, cfg: dict) -> Path:
    """The local checkpoint of a published tag: the hub cache, or ~/.cache/clip for URL weights."""
    what = f"open_clip:{arch}/{tag} (hub {cfg.get('hf_hub') or '-'}, url {cfg.get('url') or '-'})"
    provide = ("copy a Hugging Face cache that holds them into HF_HOME (or set HF_HUB_CACHE), or "
               f"pass a local checkpoint: open_clip:{arch}/path/to/open_clip_pytorch_model.bin "
               "or `imhard mine --weights PATH`")
    if cfg.get("hf_hub"):
        from open_clip.pretrained import _get_safe_alternatives

        repo, filename = os.path.split(cfg["hf_hub"])  # 'org/repo/' → the default file name
        filename = filename or "open_clip_pytorch_model.bin"
        return hf_file(repo, [*_get_safe_alternatives(filename), filename], what, provide)
    dest = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(cfg["url"])
    return dest if dest.is_file() else download(cfg["url"], dest, what, provide)


def _tokenizer(arch: str):
    import open_clip

    try:
        return open_clip.get_tokenizer(arch)
    except Exception as exc:  # HF text towers fetch their tokenizer from the hub
        raise missing(f"the tokenizer of open_clip:{arch}", [hub_cache()],
                      "copy the tokenizer's Hugging Face cache into HF_HOME", exc) from exc


def _preprocess(clip: torch.nn.Module, arch: str) -> Preprocess:
    """open_clip's eval transform for this model (resize shortest side, centre crop)."""
    import open_clip

    cfg = open_clip.get_model_preprocess_cfg(clip)
    size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][-1]
    mode = cfg.get("resize_mode", "shortest")
    if mode not in ("shortest", "squash"):
        raise InvalidValueError(f"open_clip:{arch} resizes with mode {mode!r}; pass "
                                "preprocess=Preprocess(...)")
    return Preprocess(size, size, cfg.get("interpolation", "bicubic"), tuple(cfg["mean"]),
                      tuple(cfg["std"]), squash=mode == "squash")
