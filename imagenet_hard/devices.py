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


#: Where a GPU driver shows itself: NVIDIA's nodes and proc folder, ROCm's and WSL's nodes.
GPU_DRIVER_PATHS = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")


def device_name(device: str | None = None, rank: int | None = None) -> str:
    """:func:`resolve_device` as a string, without importing torch (seconds, most of a process
    that only hands the device on) where the answer is the CPU anyway: ``cpu`` asked, or
    ``auto`` on a machine with no GPU driver."""
    asked = AUTO if device is None else str(device).strip().lower()
    if asked == "cpu" or (asked == AUTO and not any(os.path.exists(p)
                                                    for p in GPU_DRIVER_PATHS)):
        return "cpu"
    return str(resolve_device(device, rank))


def strict_fp32(device: str | torch.device) -> str:
    """Turn TF32 off for float32 matmuls and convolutions when ``device`` is CUDA, so what a run
    records as fp32 is fp32: cuDNN convolutions use TF32 by default on Ampere and later (10-bit
    mantissa). Returns the math mode to record: ``fp32`` (TF32 off) on CUDA, ``fp32`` elsewhere.
    Call it where fp32 is asked; an autocast run's float32 remainder is left as torch sets it."""
    import torch

    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return "fp32"


def math_mode(device: str | torch.device, amp_dtype: torch.dtype | None) -> str:
    """What a forward pass on ``device`` computes in: ``fp32``, ``fp32+tf32`` (CUDA with TF32 on
    for matmuls or convolutions), or the autocast dtype (``bf16``/``fp16`` autocast)."""
    import torch

    if amp_dtype is not None:
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(amp_dtype, str(amp_dtype)) \
            + " autocast"
    if torch.device(device).type == "cuda" and (torch.backends.cuda.matmul.allow_tf32
                                                 or torch.backends.cudnn.allow_tf32):
        return "fp32+tf32"
    return "fp32"


#: Where torch's DataLoader workers put the batches they hand over (shared memory).
SHM = "/dev/shm"


def check_shared_memory(workers: int, item_bytes: int, prefetch: int,
                        option: str = "--workers") -> None:
    """Refuse, before any loader worker starts, ``workers`` whose items in flight (``prefetch``
    each, ``item_bytes`` apiece) would not fit in :data:`SHM`: containers often give it 64 MB,
    and the workers then die mid-run with a bus error. One sentence: what is free, what is
    needed, the container flag and the ``option`` value that fits."""
    from .sizes import format_size

    if workers <= 0:
        return
    try:
        st = os.statvfs(SHM)
    except OSError:  # no /dev/shm (not Linux): torch's own default applies
        return
    free = st.f_bavail * st.f_frsize
    per_worker = prefetch * item_bytes
    if workers * per_worker <= free:
        return
    raise InvalidValueError(
        f"{SHM} has {format_size(free)} free but {workers} loader workers keep about "
        f"{format_size(workers * per_worker)} of data in it; give the container more shared "
        f"memory (docker run --shm-size=8g) or pass {option} {free // per_worker}")
