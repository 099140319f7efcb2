"""OpenAI CLIP ViT-L/14 zero-shot at 224 px, as the authors scored it (1.86 %).

Follows taesiri/ZoomIsAllYouNeed, src/ImageNet_Hard/Prompt_Engineering_for_ImageNet_Hard.ipynb:
``clip.load("ViT-L/14")`` — OpenAI's weights with QuickGELU, fp16 weights on CUDA — and its
preprocessing: resize the shorter side to 224 (bicubic), centre crop 224, RGB, CLIP mean/std;
each class embedding is the normalised mean of the 80 templates' normalised text embeddings over
OpenAI's 1000 curated class names; logits = 100 · cos. Built by ``create_model("clip-vit-l-14")``
(open_clip ``ViT-L-14``/``openai`` with QuickGELU forced, open_clip's precision ``fp16`` on CUDA).

Predict form. The weights come from the Hugging Face Hub (timm/vit_large_patch14_clip_224.openai);
offline, the error says which cache to copy.
"""

from imagenet_hard.models import create_model

METADATA = {
    "name": "CLIP ViT-L/14 (zero-shot)",
    "url": "https://github.com/openai/CLIP",
    "paper": "https://arxiv.org/abs/2103.00020",
    "params": 427_616_513,
    "resolution": 224,
    "uses_tta": False,
    "extra_training_data": True,
}


def load(device):
    precision = "fp16" if device.startswith("cuda") else "fp32"
    return create_model("clip-vit-l-14", device=device, precision=precision)
