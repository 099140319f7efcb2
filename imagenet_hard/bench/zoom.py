"""``imhard bench zoom``: the paper's zoom procedure against ``zoom_crops`` on the same images.

The reference is :func:`imagenet_hard.zoom.reference_crops` (appendix A.1: the whole image resized
again for each of the 324 crops, float crops from ``ToTensor``); ours is
:func:`~imagenet_hard.zoom.zoom_crops` (one resize per scale, uint8, pixel-identical), and on a
torch device also :func:`~imagenet_hard.zoom.zoom_crops_torch`. Wall clock, best of ``repeat``.
"""

from __future__ import annotations

from ..zoom import N_TRANSFORMS, image_to_tensor, reference_crops, zoom_crops, zoom_crops_torch
from .images import sample_images
from .report import BenchReport, Timing, best_time

#: The speed-up over the reference the exact path aims at.
TARGET = 10.0


def _cpu_times(images: list, repeat: int) -> tuple[float, float]:
    """(ours, reference) seconds, one torch thread, image by image, best of ``repeat`` each."""
    import torch

    # Warm-up both sides (lazy imports, first-touch allocations) so neither pays it in the timing.
    zoom_crops(images[0])
    reference_crops(images[0].resize((48, 32)))
    # Interleaving keeps a change in the machine's load from favouring one side. One torch
    # thread: PIL is single-threaded anyway, and ToTensor's tiny multi-threaded ops on a busy
    # machine measure OpenMP contention, not the procedure.
    ours = ref = 0.0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for im in images:
            ours += best_time(lambda im=im: zoom_crops(im), repeat)
            ref += best_time(lambda im=im: reference_crops(im), repeat)
    finally:
        torch.set_num_threads(threads)
    return ours, ref


def _torch_time(images: list, device: str, repeat: int) -> tuple[str, float]:
    import torch

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    tensors = [image_to_tensor(im).to(dev) for im in images]  # decoded and on the device
    zoom_crops_torch(tensors[:1], dev)
    if sync:
        sync()
    return str(dev), best_time(lambda: [zoom_crops_torch([x], dev) for x in tensors], repeat, sync)


def bench_zoom(images: list | None = None, n_images: int | None = None, device: str | None = None,
               repeat: int = 1, agreement: bool = False) -> BenchReport:
    """Crops/s of the reference procedure and of :func:`zoom_crops` (one CPU thread each).

    ``images``: PIL images (default: the sample photos, ``n_images`` of them). The torch path is
    timed too when ``device`` is given (or CUDA is available), after one warm-up call.
    ``agreement`` adds :func:`zoom_torch_agreement` with the EfficientNet-Lite0 judge (slow on a
    CPU) to the report's results.
    """
    import torch

    from ..devices import resolve_device

    if device is None and torch.cuda.is_available():
        device = "cuda"
    if device is not None:  # a device this machine lacks is told before the CPU timings
        device = str(resolve_device(device))
    images = images if images is not None else sample_images(n_images)
    crops = len(images) * N_TRANSFORMS
    ours, ref = _cpu_times(images, repeat)
    variants: tuple[Timing, ...] = ()
    if device is not None:
        dev, seconds = _torch_time(images, device, repeat)
        variants = (Timing(f"zoom_crops_torch on {dev} (within 2 grey levels)", crops, seconds),)
    results = {}
    if agreement:
        from ..judges import create_judge

        judge = create_judge("efficientnet-lite0", device=device)
        results = {f"torch path vs exact, {k}": v
                   for k, v in zoom_torch_agreement(images, judge=judge).items()}
    return BenchReport(
        name="zoom", unit="crops", target=TARGET,
        subject="the paper's 324 zoom crops (appendix A.1) against zoom_crops, same images",
        reference=Timing("appendix A.1: resize per crop, float", crops, ref),
        ours=Timing("zoom_crops: resize per scale, uint8, exact", crops, ours),
        variants=variants,
        config={"images": len(images), "crops": crops, "CPU threads": 1, "best of": repeat},
        results=results,
    )


def zoom_torch_agreement(images: list | None = None, judge=None, batch_size: int = 108) -> dict:
    """How far :func:`zoom_crops_torch` (CPU) is from the exact :func:`zoom_crops`.

    Pixel differences over all 324 crops of each image, and, with a ``judge``, the fraction of
    crops whose top-1 class differs between the two.
    """
    images = images if images is not None else sample_images()
    max_abs, abs_sum, differing, pixels, changed, crops, crops_differing = 0, 0, 0, 0, 0, 0, 0
    for im in images:
        exact = zoom_crops(im)
        fast = zoom_crops_torch([image_to_tensor(im)], "cpu")[0]
        diff = (exact.int() - fast.int()).abs()
        max_abs = max(max_abs, int(diff.max()))
        abs_sum += int(diff.sum())
        differing += int((diff > 0).sum())
        pixels += diff.numel()
        crops += exact.shape[0]
        touched = diff.flatten(1).amax(1) > 0
        crops_differing += int(touched.sum())
        if judge is not None:
            # Identical crops get identical answers: only the touched ones need the judge.
            exact, fast = exact[touched], fast[touched]
            for k in range(0, exact.shape[0], batch_size):
                a = judge(exact[k:k + batch_size]).argmax(1)
                b = judge(fast[k:k + batch_size]).argmax(1)
                changed += int((a != b).sum())
    out = {"images": len(images), "crops": crops, "max_abs": max_abs,
           "mean_abs": abs_sum / pixels, "pixels_differing": differing / pixels,
           "crops_differing": crops_differing}
    if judge is not None:
        out.update(judge=judge.name, top1_changed=changed, top1_changed_fraction=changed / crops)
    return out
