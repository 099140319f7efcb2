"""timm ``tf_efficientnet_l2.ns_jft_in1k`` (Noisy Student, JFT-300M pseudo-labels) at 800 px.

Model/transform form with timm's own eval preprocessing at 800×800. The weights (~1.9 GB) come from
the Hugging Face Hub (timm/tf_efficientnet_l2.ns_jft_in1k); set IMHARD_L2_WEIGHTS to a local
checkpoint file to use one. Use a GPU and a small --batch-size: one image is ~0.5 TFLOP.
"""

import os

from imagenet_hard.score.zoo import timm_classifier

METADATA = {
    "name": "EfficientNet-L2-NS@800",
    "url": "https://huggingface.co/timm/tf_efficientnet_l2.ns_jft_in1k",
    "paper": "https://arxiv.org/abs/1911.04252",
    "params": 480_309_308,
    "resolution": 800,
    "uses_tta": False,
    "extra_training_data": True,
}

model, transform = timm_classifier("tf_efficientnet_l2.ns_jft_in1k", input_size=800,
                                   file=os.environ.get("IMHARD_L2_WEIGHTS"))
