"""timm ``tf_efficientnet_l2.ns_jft_in1k`` (Noisy Student, JFT-300M pseudo-labels) at 800 px.

Preprocessing of the authors' notebook for this model (as audited in issue 11 against
taesiri/ZoomIsAllYouNeed): Resize(800) (bilinear), CenterCrop(800), RGB, ImageNet mean/std, not
timm's own config (resize 833 bicubic, crop 800).

Model/transform form. The weights (~1.9 GB) come from the Hugging Face Hub
(timm/tf_efficientnet_l2.ns_jft_in1k); set IMHARD_L2_WEIGHTS to a local checkpoint file to use
one. Use a GPU and a small --batch-size: one image is ~0.5 TFLOP.
"""

import os

from imagenet_hard.models import IMAGENET_MEAN, IMAGENET_STD, Preprocess, create_model

METADATA = {
    "name": "EfficientNet-L2-NS@800",
    "url": "https://huggingface.co/timm/tf_efficientnet_l2.ns_jft_in1k",
    "paper": "https://arxiv.org/abs/1911.04252",
    "params": 480_309_308,
    "resolution": 800,
    "uses_tta": False,
    "extra_training_data": True,
}

NOTEBOOK = Preprocess(800, 800, "bilinear", IMAGENET_MEAN, IMAGENET_STD)

_built = create_model("timm:tf_efficientnet_l2.ns_jft_in1k", device="cpu", preprocess=NOTEBOOK,
                      weights=os.environ.get("IMHARD_L2_WEIGHTS"))
model, transform = _built.module, _built.transform
