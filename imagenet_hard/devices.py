"""Which torch device a command runs on: the one meaning of ``--device`` everywhere.

``None`` and ``"auto"`` mean CUDA when torch sees a GPU, else the CPU. A CUDA device without an
index is this process's GPU: under ``torchrun`` the one numbered ``LOCAL_RANK`` (modulo the GPUs
present), else GPU 0. Asking for CUDA where torch sees none is an error that says what to use.
torch is imported when a device is resolved, not when this module is.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import InvalidValueError

if TYPE_CHECKING:
    import torch

AUTO = "auto"


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK`` set by torchrun; 0 otherwise)."""
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


def resolve_device(device: str | torch.device | None = None,
                   rank: int | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``rank`` picks the GPU of a bare ``cuda`` (default
    :func:`local_rank`)."""
    import torch

    if device is None or (isinstance(device, str) and device.strip().lower() == AUTO):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidValueError(f"unknown device {device!r}; use cpu, cuda, cuda:N or "
                                "auto") from exc
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise InvalidValueError(f"device {str(device)!r} asked for, but torch sees no CUDA device; "
                                "use --device cpu")
    count = torch.cuda.device_count()
    if dev.index is None:
        return torch.device("cuda", (local_rank() if rank is None else rank) % count)
    if dev.index >= count:
        raise InvalidValueError(f"device {str(device)!r} asked for, but torch sees {count} CUDA "
                                f"device(s) (cuda:0 … cuda:{count - 1})")
    return dev
