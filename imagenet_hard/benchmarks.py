"""Benchmarks that time a reference procedure against ours in one process (``imhard bench …``).

``bench_zoom`` times the paper's appendix A.1 zoom procedure (a ``transforms.Resize`` of the whole
image for every one of the 324 crops, float crops from ``ToTensor``) against
:func:`imagenet_hard.zoom.zoom_crops` on the same images, and on a torch device also
:func:`~imagenet_hard.zoom.zoom_crops_torch`. Timings are wall clock, best of ``repeat``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from importlib import resources
from pathlib import Path

from .errors import MissingFileError
from .zoom import CROP, GRID, N_TRANSFORMS, SCALES


def sample_images(n: int | None = None) -> list:
    """The sample source's photos (shipped by scikit-image and matplotlib), opened with PIL."""
    from PIL import Image

    from .builders.sample import PHOTOS

    images = []
    for package, resource, *_ in PHOTOS:
        with resources.as_file(resources.files(package).joinpath(resource)) as f:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
    if n is not None:
        images = [images[k % len(images)] for k in range(n)]
    return images


def open_images(paths: Sequence[str | Path]) -> list:
    from PIL import Image

    out = []
    for p in paths:
        if not Path(p).is_file():
            raise MissingFileError(f"image {p} does not exist")
        with Image.open(p) as im:
            im.load()
            out.append(im.copy())
    return out


def _crop_at(size: int, slice_x: int, slice_y: int):
    """The paper's ``crop_at`` (appendix A.1), verbatim in substance."""
    import torchvision.transforms.functional as fv

    def slice_crop(image, size, slice_x, slice_y):
        width, height = image.size
        tile_size_x, tile_size_y = width // 3, height // 3
        anchor_x = (slice_y * tile_size_x) + (tile_size_x // 2)
        anchor_y = (slice_x * tile_size_y) + (tile_size_y // 2)
        return fv.crop(image, anchor_y - (size // 2), anchor_x - (size // 2), size, size)

    return partial(slice_crop, size=size, slice_x=slice_x, slice_y=slice_y)


def reference_zoom_crops(image):
    """The 324 crops the paper's way: resize the whole image again for every crop, float output."""
    import torch
    import torchvision.transforms as T

    image = image.convert("RGB")
    crops = []
    for scale in SCALES:
        for i in range(GRID):
            for j in range(GRID):
                transform = T.Compose([
                    T.Resize(scale, interpolation=T.InterpolationMode.BICUBIC, max_size=None,
                             antialias=None),
                    _crop_at(CROP, i, j),
                    T.ToTensor(),
                ])
                crops.append(transform(image))
    return torch.stack(crops)


def _best_time(fn, repeat: int, sync=None) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        best = min(best, time.perf_counter() - start)
    return best


def bench_zoom(images: list | None = None, n_images: int | None = None, device: str | None = None,
               repeat: int = 1, reference: bool = True, agreement: bool = False) -> dict:
    """Crops/s of the reference procedure, of :func:`zoom_crops`, and of the torch path.

    Single process, one thread on both sides (PIL resizes on one core anyway).

    ``images``: PIL images (default: the sample photos, ``n_images`` of them). The torch path is
    timed when ``device`` is given (or CUDA is available), after one warm-up call. ``agreement``
    adds :func:`zoom_torch_agreement` with the EfficientNet-Lite0 judge (slow on a CPU).
    """
    import torch

    from .zoom import image_to_tensor, zoom_crops, zoom_crops_torch

    images = images if images is not None else sample_images(n_images)
    crops = len(images) * N_TRANSFORMS
    # Warm-up both sides (lazy imports, first-touch allocations) so neither pays it in the timing.
    zoom_crops(images[0])
    if reference:
        reference_zoom_crops(images[0].resize((48, 32)))
    result: dict = {"images": len(images), "crops": crops,
                    "sizes": [list(im.size) for im in images], "threads": 1}
    # Image by image, ours then the reference, best of ``repeat`` each: interleaving keeps a
    # change in the machine's load (other processes) from favouring one side. One torch thread:
    # PIL is single-threaded anyway, and ToTensor's tiny multi-threaded ops on a busy machine
    # measure OpenMP contention, not the procedure.
    ours = ref = 0.0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for im in images:
            ours += _best_time(lambda im=im: zoom_crops(im), repeat)
            if reference:
                ref += _best_time(lambda im=im: reference_zoom_crops(im), repeat)
    finally:
        torch.set_num_threads(threads)
    result.update(ours_s=ours, ours_crops_per_s=crops / ours)
    if reference:
        result.update(reference_s=ref, reference_crops_per_s=crops / ref, speedup=ref / ours)
    if device is None and torch.cuda.is_available():
        device = "cuda"
    if device is not None:
        dev = torch.device(device)
        sync = torch.cuda.synchronize if dev.type == "cuda" else None
        tensors = [image_to_tensor(im).to(dev) for im in images]  # decoded and on the device
        zoom_crops_torch(tensors[:1], dev)
        if sync:
            sync()
        t = _best_time(lambda: [zoom_crops_torch([x], dev) for x in tensors], repeat, sync)
        result.update(device=str(dev), torch_s=t, torch_crops_per_s=crops / t)
    if agreement:
        from .judges import create_judge

        judge = create_judge("efficientnet-lite0", device=device)
        result["agreement"] = zoom_torch_agreement(images, judge=judge)
    return result


def format_zoom_report(r: dict) -> str:
    lines = [f"{r['images']} images, {r['crops']} crops, one CPU thread each side"]
    if "reference_s" in r:
        lines.append(f"reference (appendix A.1, resize per crop, float): "
                     f"{r['reference_crops_per_s']:9.1f} crops/s  ({r['reference_s']:.2f} s)")
    lines.append(f"zoom_crops (resize per scale, uint8, exact):       "
                 f"{r['ours_crops_per_s']:9.1f} crops/s  ({r['ours_s']:.2f} s)")
    if "speedup" in r:
        lines.append(f"speed-up: {r['speedup']:.1f}x")
    if "torch_s" in r:
        lines.append(f"zoom_crops_torch on {r['device']}:                    "
                     f"{r['torch_crops_per_s']:9.1f} crops/s  ({r['torch_s']:.3f} s)")
    if "agreement" in r:
        lines.append(format_agreement_report(r["agreement"]))
    return "\n".join(lines)


def zoom_torch_agreement(images: list | None = None, judge=None, batch_size: int = 108) -> dict:
    """How far :func:`zoom_crops_torch` (CPU) is from the exact :func:`zoom_crops`.

    Pixel differences over all 324 crops of each image, and, with a ``judge``, the fraction of
    crops whose top-1 class differs between the two.
    """

    from .zoom import image_to_tensor, zoom_crops, zoom_crops_torch

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


def format_agreement_report(r: dict) -> str:
    line = (f"torch path vs exact over {r['crops']} crops: max |diff| {r['max_abs']}, mean "
            f"{r['mean_abs']:.5f}, {100 * r['pixels_differing']:.3f}% of pixels, "
            f"{r['crops_differing']} crops touched")
    if "judge" in r:
        line += (f"; {r['judge']} top-1 changed on {r['top1_changed']} crops "
                 f"({100 * r['top1_changed_fraction']:.2f}%)")
    return line


def bench_mine(*args, **kwargs):
    """The paper's mining procedure against ``imhard mine`` on the same images and judge.

    Lives in :mod:`imagenet_hard.mining.bench` (imported here lazily: it needs torch); returns a
    :class:`~imagenet_hard.mining.bench.BenchMineReport`.
    """
    from .mining.bench import bench_mine as run

    return run(*args, **kwargs)
