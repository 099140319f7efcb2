"""``imhard mine --compile`` on CUDA: a classifier judge and a CLIP judge (channels_last image
tower) compiled by inductor give the eager logits within bf16's resolution and the same top-1
on crops without near-ties; the compile time is printed."""

from __future__ import annotations

import time

import torch
from judges_support import tiny_clip_model

from imagenet_hard.judges.base import ModuleJudge
from imagenet_hard.judges.clip import ClipJudge
from imagenet_hard.models.zero_shot import random_head


def _compare(judge, eager_logits, crops):
    t = time.perf_counter()
    judge.compile()
    logits = judge(crops)
    torch.cuda.synchronize()
    print(f"\n{judge.name}: first compiled call {time.perf_counter() - t:.1f} s")
    top2 = eager_logits.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.05 * top2[:, 0].abs().clamp(min=1)
    assert torch.allclose(logits, eager_logits, atol=0.05 * eager_logits.abs().max().item())
    assert torch.equal(logits.argmax(1)[clear], eager_logits.argmax(1)[clear])


def test_compiled_judges_match_eager_on_cuda(cuda):
    crops = torch.randint(0, 256, (32, 3, 224, 224), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0)).to(cuda)
    import torchvision

    net = torchvision.models.resnet18(num_classes=1000)
    classifier = ModuleJudge("resnet18-random", net, device=cuda, precision="bf16")
    _compare(classifier, classifier(crops), crops)

    model, tokenizer = tiny_clip_model()
    clip = ClipJudge("tiny-clip", model, tokenizer, device=cuda, precision="bf16",
                     text_weights=random_head(16))
    assert clip.channels_last
    _compare(clip, clip(crops), crops)
