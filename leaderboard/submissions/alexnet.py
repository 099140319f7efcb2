"""torchvision AlexNet (IMAGENET1K_V1), preprocessed as the authors scored it.

Follows taesiri/ZoomIsAllYouNeed, src/ImageNet_Hard/Benchmark_ImageNet_Hard.ipynb: the model is
``models.alexnet(pretrained=True)`` (= IMAGENET1K_V1) and the preprocessing the notebook's
``standard_transform``: resize the shorter side to 256 (bilinear), centre crop 224, RGB, ImageNet
mean/std (imagenet_hard.models.preprocess.AUTHORS_STANDARD).

Model/transform form. The weights download from download.pytorch.org; offline, put the file in
$TORCH_HOME/hub/checkpoints (the error names it).
"""

from imagenet_hard.models import create_model
from imagenet_hard.models.preprocess import AUTHORS_STANDARD

METADATA = {
    "name": "AlexNet",
    "url": "https://pytorch.org/vision/stable/models.html",
    "paper": "https://papers.nips.cc/paper/4824",
    "params": 61_100_840,
    "resolution": 224,
    "uses_tta": False,
    "extra_training_data": False,
}

_built = create_model("torchvision:alexnet.IMAGENET1K_V1", device="cpu", preprocess=AUTHORS_STANDARD)
model, transform = _built.module, _built.transform
