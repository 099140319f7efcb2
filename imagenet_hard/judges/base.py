"""The judge interface: uint8 crops in, ImageNet-1k logits out, whatever the model behind it.

A :class:`Judge` owns its device, its normalisation and its autocast, so the miner hands it
uint8 crops (on any device) and gets float32 ``(N, 1000)`` logits in class-index order. It is not
an ``nn.Module``: subclasses wrap one (or a function, see ``scripted``); ``factory`` builds
the model through :func:`imagenet_hard.models.create_model` and wraps it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from ..devices import keep_freed_memory, resolve_device
from ..errors import InvalidValueError
from ..labels import NUM_CLASSES
from ..models.preprocess import PRECISIONS as FIXED_PRECISIONS

#: ``auto``: bf16 (else fp16) autocast on CUDA, fp32 elsewhere; or one of the fixed precisions.
PRECISIONS = ("auto", *FIXED_PRECISIONS)


def amp_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: no autocast, plain fp32)."""
    if precision not in PRECISIONS:
        raise InvalidValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


class Judge:
    """Classifies 224×224 uint8 crops over the 1000 ImageNet-1k classes.

    Subclasses implement :meth:`forward` on normalised float input already on :attr:`device`.
    """

    input_size = 224
    num_classes = NUM_CLASSES
    #: The dtype of the judge's own low-precision weights (clip.load's fp16), None for fp32
    #: weights (under :attr:`amp_dtype`'s autocast, if any).
    weights_dtype: torch.dtype | None = None
    #: Whether :meth:`forward` runs the model through ``torch.compile`` (:meth:`compile`).
    compiled: bool = False

    def __init__(self, name: str, device=None, mean: Sequence[float] = (0.0, 0.0, 0.0),
                 std: Sequence[float] = (1.0, 1.0, 1.0), precision: str = "auto"):
        self.name = name
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()   # a third less time a crop on the CPU (devices.keep_freed_memory)
        self.precision = precision
        self.amp_dtype = amp_dtype(self.device, precision)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._std = torch.tensor(self.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._mean = torch.tensor(self.mean, dtype=torch.float32,
                                  device=self.device).view(1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Normalised float (N, 3, 224, 224) on :attr:`device` → logits (N, 1000)."""
        raise NotImplementedError

    def compile_target(self) -> torch.nn.Module | None:
        """The module :meth:`compile` compiles (None: this judge has no model to compile)."""
        return None

    def compile(self, **options) -> Judge:
        """Run the model behind :meth:`forward` through ``torch.compile(model, **options)`` from
        now on (``imhard mine --compile``). Compiling happens at the first call of each input
        shape and autocast state (a run's last, shorter batch and the fp32 re-judging of
        near-ties compile once more each); the FLOP count stays eager."""
        target = self.compile_target()
        if target is None:
            raise InvalidValueError(f"judge {self.name} has no torch model to compile; mine it "
                                    "without --compile")
        self._compiled = torch.compile(target, **options)
        self.compiled = True
        return self

    def _model(self, eager: torch.nn.Module):
        """The module to call: the compiled one when :attr:`compiled`, else ``eager``."""
        return self._compiled if self.compiled else eager

    def normalize(self, crops: torch.Tensor) -> torch.Tensor:
        """``(x / 255 - mean) / std`` in torchvision's order of operations (``ToTensor``, then
        ``Normalize``), so the inputs are bit-identical to the authors' scripts'; one fused
        multiply-add would move a logit of ±70 by ~3e-5."""
        x = crops.to(self.device, non_blocking=True).float()
        return x.div_(255.0).sub_(self._mean).div_(self._std)

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, 224, 224) crops on any device → float32 (N, 1000) logits on :attr:`device`."""
        if not isinstance(crops, torch.Tensor) or crops.dtype != torch.uint8 or crops.dim() != 4 \
                or tuple(crops.shape[1:]) != (3, self.input_size, self.input_size):
            got = (f"{crops.dtype} {tuple(crops.shape)}" if isinstance(crops, torch.Tensor)
                   else type(crops).__name__)
            raise InvalidValueError(f"judge {self.name} takes uint8 crops of shape "
                                    f"(N, 3, {self.input_size}, {self.input_size}); got {got}")
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.amp_dtype,
                                                    enabled=self.amp_dtype is not None):
            logits = self.forward(self.normalize(crops))
        if logits.dim() != 2 or logits.shape != (crops.shape[0], self.num_classes):
            raise InvalidValueError(f"judge {self.name} returned logits of shape "
                                    f"{tuple(logits.shape)}; expected ({crops.shape[0]}, "
                                    f"{self.num_classes}) over the ImageNet-1k classes")
        return logits.float()

    @functools.cached_property
    def flops_per_image(self) -> int:
        """FLOPs of one crop's forward pass (2 per multiply-add), counted once on a dummy input."""
        from torch.utils.flop_counter import FlopCounterMode

        dummy = torch.zeros((1, 3, self.input_size, self.input_size), device=self.device)
        counter = FlopCounterMode(display=False)
        compiled, self.compiled = self.compiled, False  # the counter sees eager operators only
        try:
            with torch.inference_mode(), counter:
                self.forward(dummy)
        finally:
            self.compiled = compiled
        return int(counter.get_total_flops())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r})"


class ModuleJudge(Judge):
    """A judge around an ImageNet-1k classifier ``nn.Module`` (torchvision, timm, EfficientNet)."""

    def __init__(self, name: str, model: torch.nn.Module, device=None, mean=(0.0, 0.0, 0.0),
                 std=(1.0, 1.0, 1.0), precision: str = "auto"):
        super().__init__(name, device=device, mean=mean, std=std, precision=precision)
        # channels_last on the CPU too: oneDNN's depthwise and 1x1 convolutions are faster in it
        # (EfficientNet-Lite0, 32 crops, one thread: 1.67 -> 1.01 CPU-s), same top-1.
        self.model = model.eval().to(self.device).to(memory_format=torch.channels_last)

    def compile_target(self) -> torch.nn.Module:
        return self.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._model(self.model)(x.contiguous(memory_format=torch.channels_last))

