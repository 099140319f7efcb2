"""Test helpers for judges: a tiny random open_clip model that runs the real CLIP judge code.

``tiny_clip_judge()`` builds (once per process) a CLIP with a 1-layer, 32-wide vision and text
tower and a 16-token context, the real OpenAI tokenizer, and the real 1000 class names × 80
templates; the text embeddings take a few seconds on a CPU.
"""

from __future__ import annotations

import functools


def tiny_clip_model(context_length: int = 16):
    import open_clip
    import torch
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=32, image_size=224),
        text_cfg=CLIPTextCfg(context_length=context_length, vocab_size=49408, width=32, heads=2,
                             layers=1),
    )
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=context_length)
    return model.eval(), tokenizer


@functools.cache
def tiny_clip_judge(normalization: str = "clip"):
    from imagenet_hard.judges.clip import ClipJudge

    model, tokenizer = tiny_clip_model()
    return ClipJudge("tiny-clip", model, tokenizer, device="cpu", normalization=normalization)
