"""torchvision AlexNet (IMAGENET1K_V1) with its weights' own preprocessing (resize 256, crop 224).

Model/transform form. The weights download from download.pytorch.org; without network the harness
shows which file is missing and where to put it.
"""

from imagenet_hard.score.zoo import torchvision_classifier

WEIGHTS = "IMAGENET1K_V1"

METADATA = {
    "name": "AlexNet",
    "url": "https://pytorch.org/vision/stable/models.html",
    "paper": "https://papers.nips.cc/paper/4824",
    "params": 61_100_840,
    "resolution": 224,
    "uses_tta": False,
    "extra_training_data": False,
}

model, transform = torchvision_classifier("alexnet", WEIGHTS)
