"""torchvision ViT-B/32 (IMAGENET1K_V1), preprocessed as the authors scored it.

Follows taesiri/ZoomIsAllYouNeed, src/ImageNet_Hard/Benchmark_ImageNet_Hard.ipynb: the model is
``models.vit_b_32(pretrained=True)`` (= IMAGENET1K_V1) and the preprocessing the notebook's
``standard_transform``: resize the shorter side to 256 (bilinear), centre crop 224, RGB, ImageNet
mean/std (imagenet_hard.models.preprocess.AUTHORS_STANDARD).

Model/transform form. The weights download from download.pytorch.org; offline, put the file in
$TORCH_HOME/hub/checkpoints (the error names it).
"""

from imagenet_hard.models import create_model
from imagenet_hard.models.preprocess import AUTHORS_STANDARD

METADATA = {
    "name": "ViT-B/32",
    "url": "https://pytorch.org/vision/stable/models.html",
    "paper": "https://arxiv.org/abs/2010.11929",
    "params": 88_224_232,
    "resolution": 224,
    "uses_tta": False,
    "extra_training_data": False,
}

_built = create_model("torchvision:vit_b_32.IMAGENET1K_V1", device="cpu", preprocess=AUTHORS_STANDARD)
model, transform = _built.module, _built.transform
