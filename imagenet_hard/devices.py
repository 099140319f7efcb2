"""Which torch device a command runs on: the one meaning of ``--device`` everywhere.

``None`` and ``"auto"`` mean CUDA when torch sees a GPU, else the CPU. A CUDA device without an
index is this process's GPU: under ``torchrun`` the one numbered ``LOCAL_RANK`` (modulo the GPUs
present), else GPU 0. Asking for CUDA where torch sees none is an error that says what to use.
torch is imported when a device is resolved, not when this module is.
"""

from __future__ import annotations

import functools
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


#: Scoring loaders where the user gave no --workers / --batch-size, by device type: (most
#: workers, batch). A GPU outruns one decoding process many times over (ResNet-50 at ~3,000
#: images/s against ~300 per CPU core), so CUDA takes every CPU but one; elsewhere the workers
#: share the CPU with the model.
SCORING_LOADER = {"cuda": (16, 256), "cpu": (4, 32)}


#: glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_MAX and M_ARENA_MAX.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc keep the memory a CPU forward pass frees, for the next batch to reuse. By default
    each activation over 32 MiB is mapped from the kernel and unmapped when freed, so every batch
    page-faults its activations in again: EfficientNet-Lite0, 64 crops a batch, one thread,
    21 → 13.8 ms a crop (7-10 ms of it in the kernel before; under 0.3 after), peak memory
    unchanged. Freed memory, up to 2 GiB at the top of the heap (the most mallopt takes), then
    stays with the process: for processes that judge or score, not for the parent that streams
    a dataset. Once per process; False where the C library is not glibc (nothing changes)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # One arena: a thread's own arena grows in mapped heaps of at most 64 MiB, which it unmaps
    # when freed, so a batch judged on another thread faulted its pages in again.
    return all(mallopt(option, value) for option, value in (
        (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1)))


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def scoring_loader(device: str | torch.device, workers: int | None = None,
                   batch_size: int | None = None) -> tuple[int, int]:
    """(DataLoader workers, batch size) for scoring on ``device``: each as given, else chosen
    from the device by :data:`SCORING_LOADER`: CPUs-1 workers up to the cap, and its batch.
    The one place these defaults are set (``imhard score``, ``verify``, the host)."""
    cap, batch = SCORING_LOADER.get(str(device).split(":")[0], SCORING_LOADER["cpu"])
    return (min(cap, max(0, cpu_count() - 1)) if workers is None else workers,
            batch if batch_size is None else batch_size)


#: Where torch's DataLoader workers put the batches they hand over (shared memory). torch's
#: "file_system" sharing strategy names its segments instead of passing descriptors, but they
#: are files in this same folder (shm_open), so it needs the same room: no remedy for a small one.
SHM = "/dev/shm"
#: How loader workers hand tensors over: shared memory (torch's way), or by value through their
#: pipes once :func:`fit_shared_memory` found /dev/shm too small (for this whole process).
_TRANSPORT = {"tensors": "shared memory"}


def tensor_transport() -> str:
    """How this process's loader workers hand tensors over (recorded with a run's shards)."""
    return _TRANSPORT["tensors"]


def shared_memory_free() -> int | None:
    """Bytes free in :data:`SHM`; None where there is none (not Linux: torch's default)."""
    try:
        st = os.statvfs(SHM)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _by_value(obj):
    return obj.__reduce_ex__(4)  # torch's own pickling: the bytes, not a shared segment's name


def send_tensors_through_pipes() -> None:
    """Make this process, and the workers it forks from now on, pickle tensors by value into
    their pipes instead of moving them to shared memory (torch registers the latter with
    multiprocessing's ForkingPickler; a later registration wins). Slower for big batches, but
    it needs no /dev/shm at all."""
    from multiprocessing.reduction import ForkingPickler

    import torch

    for cls in (torch.Tensor, torch.nn.Parameter, torch.UntypedStorage, torch.TypedStorage):
        ForkingPickler.register(cls, _by_value)


def fit_shared_memory(workers: int, item_bytes: int, prefetch: int, *, batched: bool = False,
                      option: str = "--workers", echo=None, refuse: bool = False) -> int:
    """The loader workers to start where ``workers`` workers keeping ``prefetch`` items of
    ``item_bytes`` each in flight would not fit in :data:`SHM` (containers often give it 64 MB;
    the workers then die mid-run with a bus error). Checked before any worker starts:

    - a loader handing items over one at a time (``batched=False``) with forked workers keeps
      ``workers``, and tensors travel through the workers' pipes instead
      (:func:`send_tensors_through_pipes`);
    - a batching loader (torch's collate builds each batch in shared memory inside the worker)
      gets as many workers as fit, 0 at worst (loading in the process itself);
    - otherwise (workers not forked, or ``refuse``) the run is refused in one sentence.

    Either remedy says so in one line on stderr (``echo``) and is recorded
    (:func:`tensor_transport`, or the worker count the caller passes on)."""
    import multiprocessing
    import sys

    from .sizes import format_size

    free = shared_memory_free()
    per_worker = prefetch * item_bytes
    if workers <= 0 or free is None or workers * per_worker <= free:
        return workers
    echo = echo or (lambda line: print(line, file=sys.stderr))
    fix = "give the container more shared memory (docker run --shm-size=8g)"
    if not refuse and not batched and multiprocessing.get_start_method() == "fork":
        send_tensors_through_pipes()
        _TRANSPORT["tensors"] = f"pipes ({SHM}: {format_size(free)} free)"
        echo(f"{SHM} has {format_size(free)} free, less than {workers} loader workers keep in "
             f"it (about {format_size(workers * per_worker)}): their tensors go through pipes "
             f"instead, slower; {fix} to use it")
        return workers
    if not refuse and batched:
        fits = free // per_worker
        echo(f"{SHM} has {format_size(free)} free, less than {workers} loader workers keep in "
             f"it (about {format_size(workers * per_worker)}): using {fits}; {fix} or pass "
             f"{option} to choose")
        return int(fits)
    raise InvalidValueError(
        f"{SHM} has {format_size(free)} free but {workers} loader workers keep about "
        f"{format_size(workers * per_worker)} of data in it; {fix} or pass {option} "
        f"{free // per_worker}")


def check_shared_memory(workers: int, item_bytes: int, prefetch: int,
                        option: str = "--workers") -> None:
    """Refuse, before any loader worker starts, ``workers`` whose items in flight would not fit
    in :data:`SHM`, in one sentence: what is free, what is needed, the container flag and the
    ``option`` value that fits. Passes once this process sends tensors through pipes (mining
    switches before its engine checks: :func:`fit_shared_memory`)."""
    if not tensor_transport().startswith("pipes"):
        fit_shared_memory(workers, item_bytes, prefetch, batched=True, option=option,
                          refuse=True)
