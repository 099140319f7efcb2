"""Helpers the reference submissions use to build real models, failing with a message that says
which weights are missing and where to put them (no network is the normal case in some places).

Each returns what the submission contract needs: ``(model, transform)`` for the model form, or an
object with ``predict`` for the predict form.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MissingWeightsError
from ..labels import clip_names, clip_templates


def _torch_cache() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_classifier(arch: str, weights: str = "DEFAULT"):
    """``(model, transform)`` for a torchvision classifier and its weights' own preprocessing."""
    import torchvision

    enum = torchvision.models.get_model_weights(arch)
    w = enum[weights] if weights != "DEFAULT" else enum.DEFAULT
    try:
        model = torchvision.models.get_model(arch, weights=w)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        raise MissingWeightsError(
            f"torchvision {arch} weights {w} could not be downloaded from {w.url} ({exc}). "
            f"Put {Path(w.url).name} in {_torch_cache()} (or set TORCH_HOME to a folder whose "
            "hub/checkpoints holds it), or score where download.pytorch.org is reachable."
        ) from exc
    return model.eval(), w.transforms()


def timm_classifier(name: str, input_size: int | None = None, file: str | None = None):
    """``(model, transform)`` for a pretrained timm model with its own eval preprocessing at
    ``input_size`` (default: the model's). ``file`` is a local checkpoint to use instead of the Hub."""
    import timm

    overlay = {"file": file} if file else None
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
    except Exception as exc:  # hub errors come in many types (offline, HTTP, missing file)
        raise MissingWeightsError(
            f"timm weights for {name} could not be loaded ({type(exc).__name__}: {exc}). Download "
            f"them where the network is reachable (`hf download timm/{name}`) and copy that HF_HOME "
            "here, or pass a local checkpoint file."
        ) from exc
    cfg = timm.data.resolve_data_config({}, model=model)
    if input_size:
        cfg["input_size"] = (3, input_size, input_size)
    return model.eval(), timm.data.create_transform(**cfg)


class ClipZeroShot:
    """CLIP zero-shot over the 1000 classes: each class embedding is the normalised mean of the
    80 OpenAI templates' normalised text embeddings; logits = 100 · image · textᵀ."""

    def __init__(self, model, preprocess, tokenizer, device: str, batch: int = 80):
        import torch

        self.model, self.preprocess, self.device = model.eval().to(device), preprocess, device
        rows = []
        with torch.inference_mode():
            for name in clip_names():
                tokens = tokenizer([t.format(name) for t in clip_templates()]).to(device)
                emb = model.encode_text(tokens)
                emb = emb / emb.norm(dim=-1, keepdim=True)
                mean = emb.mean(dim=0)
                rows.append(mean / mean.norm())
        self.text = torch.stack(rows, dim=1)  # (dim, 1000)

    def predict(self, images):
        import torch

        x = torch.stack([self.preprocess(im) for im in images]).to(self.device)
        with torch.inference_mode():
            img = self.model.encode_image(x)
            img = img / img.norm(dim=-1, keepdim=True)
            return 100.0 * img @ self.text


def clip_zero_shot(model_name: str, pretrained: str, device: str) -> ClipZeroShot:
    """An open_clip model with released weights as a 1000-class zero-shot classifier."""
    import open_clip

    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name,
                                                                     pretrained=pretrained)
    except Exception as exc:
        raise MissingWeightsError(
            f"open_clip {model_name} weights {pretrained!r} could not be loaded "
            f"({type(exc).__name__}: {exc}). Download them where the network is reachable "
            f"(`python -c \"import open_clip; open_clip.create_model_and_transforms('{model_name}', "
            f"pretrained='{pretrained}')\"`) and copy that HF_HOME "
            f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}) here."
        ) from exc
    return ClipZeroShot(model, preprocess, open_clip.get_tokenizer(model_name), device)
