"""A judge whose answers a Python function decides: for testing mining pipelines without a model.

``ScriptedJudge(fn)`` calls ``fn`` on the uint8 crops (moved to the CPU) and accepts either class
indices ``(N,)`` (turned into one-hot logits) or logits ``(N, 1000)``. A test can make a judge that
is right only on chosen crops by painting those crops' content and reading it back in ``fn``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import InvalidValueError
from .base import Judge


class ScriptedJudge(Judge):
    """A judge driven by ``fn(crops_uint8_cpu) -> class indices (N,) or logits (N, 1000)``."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str = "scripted",
                 device="cpu", flops_per_image: int = 0):
        super().__init__(name, device=device, precision="fp32")
        self.fn = fn
        self._flops = int(flops_per_image)

    def normalize(self, crops: torch.Tensor) -> torch.Tensor:
        return crops  # fn sees the raw uint8 crops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.as_tensor(self.fn(x.cpu()))
        if out.dim() == 1:
            if out.shape[0] != x.shape[0]:
                raise InvalidValueError(f"scripted judge returned {out.shape[0]} classes for "
                                        f"{x.shape[0]} crops")
            logits = torch.zeros((x.shape[0], self.num_classes))
            logits[torch.arange(x.shape[0]), out.long()] = 1.0
            out = logits
        return out.float().to(self.device)

    @property
    def flops_per_image(self) -> int:  # type: ignore[override]
        return self._flops
