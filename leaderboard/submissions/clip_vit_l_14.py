"""OpenAI CLIP ViT-L/14 (open_clip, ``pretrained="openai"``) zero-shot at 224 px.

Predict form: the class embeddings are the normalised means of OpenAI's 80 prompt templates over
its 1000 curated class names (imagenet_hard.labels); logits = 100 · image · textᵀ. The weights come
from the Hugging Face Hub; without network the harness shows what to download.
"""

from imagenet_hard.score.zoo import clip_zero_shot

METADATA = {
    "name": "CLIP ViT-L/14 (zero-shot)",
    "url": "https://github.com/mlfoundations/open_clip",
    "paper": "https://arxiv.org/abs/2103.00020",
    "params": 427_616_513,
    "resolution": 224,
    "uses_tta": False,
    "extra_training_data": True,
}


def load(device):
    return clip_zero_shot("ViT-L-14", "openai", device)
