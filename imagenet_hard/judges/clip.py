"""CLIP zero-shot judges (open_clip): ``clip-vit-l-14`` (the paper's) and ``open_clip:ARCH/TAG``.

Each class's text embedding is the normalised mean of its 80 prompt embeddings (each normalised),
computed once per judge; logits = 100 · image_emb · text_embᵀ (paper appendix A.4, DESIGN §6).
:func:`zero_shot_weights` is a pure function over a built model and tokenizer, so any open_clip
model (a tiny random one in tests) runs the same code as ViT-L/14.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..errors import ImHardError, UnknownNameError
from ..labels import clip_names, clip_templates
from ..weights import IMAGENET_MEAN, IMAGENET_STD
from .base import Judge
from .offline import hf_cache_dir, missing

#: OpenAI CLIP's normalisation (open_clip.OPENAI_DATASET_MEAN/STD).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NORMALIZATIONS = {"clip": (CLIP_MEAN, CLIP_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}
LOGIT_SCALE = 100.0


def zero_shot_weights(model, tokenizer: Callable, classnames: Sequence[str] = None,
                      templates: Sequence[str] = None, device=None,
                      classes_per_batch: int = 10) -> torch.Tensor:
    """Class text embeddings (C, D), float32: per class the normalised mean of the normalised
    embeddings of ``template.format(name)`` over the templates (default: OpenAI's 80 × 1000)."""
    classnames = list(clip_names() if classnames is None else classnames)
    templates = list(clip_templates() if templates is None else templates)
    device = device or next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(classnames), classes_per_batch):
            names = classnames[start:start + classes_per_batch]
            tokens = tokenizer([t.format(n) for n in names for t in templates]).to(device)
            emb = model.encode_text(tokens).float()
            emb = emb / emb.norm(dim=-1, keepdim=True)
            emb = emb.view(len(names), len(templates), -1).mean(dim=1)
            out.append(emb / emb.norm(dim=-1, keepdim=True))
    return torch.cat(out).float()


class ClipJudge(Judge):
    """Zero-shot CLIP over the 1000 OpenAI class names and prompt templates.

    ``normalization="clip"`` uses the weights' own mean/std (``mean_std``, OpenAI's by default);
    ``"imagenet"`` reproduces the original repository's slip. Models trained at another input
    size (ViT-L/14@336) see the 224 crops resized (bicubic) to their size.
    """

    def __init__(self, name: str, model, tokenizer: Callable, device=None,
                 normalization: str = "clip", precision: str = "auto",
                 text_weights: torch.Tensor | None = None, mean_std=(None, None)):
        if normalization not in NORMALIZATIONS:
            raise UnknownNameError(f"unknown normalization {normalization!r}; "
                                   f"known: {', '.join(NORMALIZATIONS)}")
        mean, std = NORMALIZATIONS[normalization]
        if normalization == "clip" and mean_std[0] is not None:
            mean, std = mean_std
        super().__init__(name, device=device, mean=mean, std=std, precision=precision)
        self.normalization = normalization
        self.model = model.eval().to(self.device)
        size = getattr(getattr(model, "visual", None), "image_size", self.input_size)
        self.model_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        if text_weights is None:
            with torch.autocast(self.device.type, dtype=self.amp_dtype,
                                enabled=self.amp_dtype is not None):
                text_weights = zero_shot_weights(self.model, tokenizer, device=self.device)
        self.text_weights = text_weights.to(self.device, torch.float32)  # (1000, D), once

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.model_size:
            x = torch.nn.functional.interpolate(x, size=self.model_size, mode="bicubic",
                                                antialias=True, align_corners=False)
        emb = self.model.encode_image(x).float()
        emb = emb / emb.norm(dim=-1, keepdim=True)
        return LOGIT_SCALE * emb @ self.text_weights.T


def parse_open_clip_spec(spec: str) -> tuple[str, str | None]:
    """``ARCH/TAG`` or ``ARCH/path/to/checkpoint`` → (arch, tag or path); ``ARCH`` alone → no tag."""
    arch, _, pretrained = spec.partition("/")
    return arch, (pretrained or None)


def create_open_clip_judge(spec: str, device=None, weights: str | None = None,
                           normalization: str = "clip", precision: str = "auto") -> ClipJudge:
    """``open_clip:ARCH/TAG`` (a published tag) or ``open_clip:ARCH/path`` (a local checkpoint)."""
    import open_clip

    arch, pretrained = parse_open_clip_spec(spec)
    pretrained = weights or pretrained
    archs = open_clip.list_models()
    if arch not in archs:
        close = difflib.get_close_matches(arch, archs, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"open_clip has no architecture {arch!r}.{hint} "
                               "List them with open_clip.list_models().")
    if pretrained is None:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise UnknownNameError(f"open_clip:{arch} needs weights: open_clip:{arch}/TAG with TAG in "
                               f"{', '.join(tags) or '(none published)'}, or open_clip:{arch}/PATH")
    model, cfg = _load_open_clip(arch, pretrained)
    tokenizer = _tokenizer(arch)
    return ClipJudge(f"open_clip:{arch}/{pretrained}", model, tokenizer, device=device,
                     normalization=normalization, precision=precision,
                     mean_std=(cfg.get("mean"), cfg.get("std")))


def _load_open_clip(arch: str, pretrained: str):
    """(model, pretrained cfg) with the weights loaded, or a MissingWeightsError saying what to do."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if cfg:
        path = _tag_file(arch, pretrained, cfg)
        quick_gelu = bool(cfg.get("quick_gelu", False))  # open_clip only warns on a mismatch
    else:
        path = Path(pretrained).expanduser()
        if not (os.sep in pretrained or path.suffix):
            tags = open_clip.list_pretrained_tags_by_model(arch)
            raise UnknownNameError(f"{pretrained!r} is neither a published open_clip tag for "
                                   f"{arch} ({', '.join(tags) or 'none'}) nor a checkpoint path")
        if not path.is_file():
            raise missing(f"open_clip:{arch}", [str(path)], "check the checkpoint path")
        quick_gelu = arch.endswith("-quickgelu")
    try:
        model = open_clip.create_model(arch, pretrained=str(path), force_quick_gelu=quick_gelu)
    except ImHardError:
        raise
    except Exception as exc:  # a file that is not a checkpoint of this architecture
        raise missing(f"open_clip:{arch}/{pretrained}", [str(path)],
                      "pass a checkpoint of this architecture (open_clip state dict)", exc) from exc
    return model, (cfg or {})


def _tag_file(arch: str, tag: str, cfg: dict) -> Path:
    """The local checkpoint of a published tag: the hub cache, or ~/.cache/clip for URL weights."""
    from .offline import download, hf_file

    what = f"open_clip:{arch}/{tag} (hub {cfg.get('hf_hub') or '-'}, url {cfg.get('url') or '-'})"
    provide = ("copy a Hugging Face cache that holds them into HF_HOME (or set HF_HUB_CACHE), or "
               f"pass a local checkpoint: open_clip:{arch}/path/to/open_clip_pytorch_model.bin "
               "or --weights PATH")
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
        raise missing(f"the tokenizer of open_clip:{arch}", [str(hf_cache_dir())],
                      "copy the tokenizer's Hugging Face cache into HF_HOME", exc) from exc


def create_clip_vit_l_14_judge(device=None, weights: str | None = None,
                               normalization: str = "clip", precision: str = "auto") -> ClipJudge:
    """The paper's judge: ViT-L/14 with OpenAI's weights (``--weights`` for a local copy)."""
    if weights:
        # A local copy of OpenAI's weights: QuickGELU architecture, as the 'openai' tag.
        judge = create_open_clip_judge(f"ViT-L-14-quickgelu/{weights}", device=device,
                                       normalization=normalization, precision=precision)
    else:
        judge = create_open_clip_judge("ViT-L-14/openai", device=device,
                                       normalization=normalization, precision=precision)
    judge.name = "clip-vit-l-14"
    return judge
