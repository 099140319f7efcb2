"""torchvision ResNet-50 (IMAGENET1K_V1) with its weights' own preprocessing (resize 256, crop 224).

IMAGENET1K_V1 (torchvision's DEFAULT is V2) to match the weights behind the published
numbers; set WEIGHTS = "DEFAULT" for the newer recipe.

Model/transform form. The weights download from download.pytorch.org; without network the harness
shows which file is missing and where to put it.
"""

from imagenet_hard.score.zoo import torchvision_classifier

WEIGHTS = "IMAGENET1K_V1"

METADATA = {
    "name": "ResNet-50",
    "url": "https://pytorch.org/vision/stable/models.html",
    "paper": "https://arxiv.org/abs/1512.03385",
    "params": 25_557_032,
    "resolution": 224,
    "uses_tta": False,
    "extra_training_data": False,
}

model, transform = torchvision_classifier("resnet50", WEIGHTS)
