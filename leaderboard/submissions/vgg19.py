"""torchvision VGG-19 (IMAGENET1K_V1) with its weights' own preprocessing (resize 256, crop 224).

Model/transform form. The weights download from download.pytorch.org; without network the harness
shows which file is missing and where to put it.
"""

from imagenet_hard.score.zoo import torchvision_classifier

WEIGHTS = "IMAGENET1K_V1"

METADATA = {
    "name": "VGG-19",
    "url": "https://pytorch.org/vision/stable/models.html",
    "paper": "https://arxiv.org/abs/1409.1556",
    "params": 143_667_240,
    "resolution": 224,
    "uses_tta": False,
    "extra_training_data": False,
}

model, transform = torchvision_classifier("vgg19", WEIGHTS)
