"""The 324 zoom transforms: naming, pixel identity with the paper's definition, the torch path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as fv
from PIL import Image

from imagenet_hard.errors import InvalidValueError
from imagenet_hard.zoom import (
    N_TRANSFORMS,
    SCALES,
    STANDARD_CROP_INDEX,
    Transform,
    group_indices,
    group_mask,
    image_to_tensor,
    standard_crop,
    transform_index,
    transform_info,
    zoom_crops,
    zoom_crops_torch,
)

PAPER_SCALES = [10, 16, 32, 48, 64, 96, 122, 128, 192, 224, 235, 240, 256, 288, 320, 348, 384,
                448, 460, 512, 573, 576, 640, 664, 672, 680, 686, 690, 700, 720, 768, 798, 832,
                896, 911, 1024]


# --- an independent reference: the paper's appendix A.1, one Resize per crop -------------------

def paper_crop(image: Image.Image, scale: int, i: int, j: int) -> torch.Tensor:
    resized = T.Resize(scale, interpolation=T.InterpolationMode.BICUBIC, max_size=None,
                       antialias=None)(image)
    width, height = resized.size
    tx, ty = width // 3, height // 3
    ax, ay = j * tx + tx // 2, i * ty + ty // 2
    return fv.pil_to_tensor(fv.crop(resized, ay - 112, ax - 112, 224, 224))


def assert_matches_paper(image: Image.Image, scales=PAPER_SCALES):
    ours = zoom_crops(image)
    assert ours.dtype == torch.uint8 and ours.shape == (324, 3, 224, 224)
    rgb = image.convert("RGB")
    for s, scale in enumerate(PAPER_SCALES):
        if scale not in scales:
            continue
        for i in range(3):
            for j in range(3):
                ref = paper_crop(rgb, scale, i, j)
                k = 9 * s + 3 * i + j
                assert torch.equal(ours[k], ref), f"crop {k} (S={scale}, {i},{j}) differs"


def photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


def synthetic(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Noise over a gradient with hard edges: every resampling slip shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (255 * (x + y) / (width + height)).astype(np.float64)
    arr = np.stack([base, 255 - base, (x % 7 < 3) * 255.0], axis=-1)
    arr = np.clip(arr + rng.normal(0, 40, arr.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB").convert(mode)


# --- naming ------------------------------------------------------------------------------------

def test_scales_and_count_are_the_papers():
    assert list(SCALES) == PAPER_SCALES
    assert N_TRANSFORMS == 324


def test_transform_index_order_and_round_trip():
    assert transform_info(0) == Transform(10, 0, 0, "zoom-out")
    assert transform_info(323) == Transform(1024, 2, 2, "zoom-in")
    assert transform_info(9 * 9 + 3 * 1 + 2) == Transform(224, 1, 2, "zoom-224")
    for k in range(N_TRANSFORMS):
        t = transform_info(k)
        assert transform_index(t.scale, t.row, t.col) == k == t.index
    assert STANDARD_CROP_INDEX == transform_index(256, 1, 1) == 112


def test_groups_partition_the_transforms():
    sizes = {g: len(group_indices(g)) for g in ("zoom-out", "zoom-224", "zoom-in")}
    assert sizes == {"zoom-out": 81, "zoom-224": 9, "zoom-in": 234}
    total = group_mask("zoom-out").astype(int) + group_mask("zoom-224") + group_mask("zoom-in")
    assert (total == 1).all()
    assert all(transform_info(k).scale < 224 for k in group_indices("zoom-out"))


@pytest.mark.parametrize("bad", [lambda: transform_info(324), lambda: transform_info(-1),
                                 lambda: transform_index(255, 1, 1),
                                 lambda: transform_index(256, 3, 0),
                                 lambda: group_mask("zoom-sideways"),
                                 lambda: zoom_crops(synthetic(20, 20), indices=[400])])
def test_bad_transform_names_are_clear_errors(bad):
    with pytest.raises(InvalidValueError):
        bad()


# --- pixel identity with the paper's definition -------------------------------------------------

@pytest.mark.slow
def test_landscape_photo_all_324(tmp_path):
    assert_matches_paper(photo("chelsea"))  # 451×300


@pytest.mark.slow
def test_portrait_photo_all_324():
    assert_matches_paper(photo("rocket"))  # 427×640


def test_tiny_8x5_and_5x8():
    assert_matches_paper(synthetic(8, 5), scales=PAPER_SCALES[::3] + [1024])
    assert_matches_paper(synthetic(5, 8, seed=1), scales=PAPER_SCALES[1::4])


def test_greyscale_rgba_and_palette_inputs():
    assert_matches_paper(photo("camera"), scales=[10, 224, 256, 573, 1024])  # L, 512×512
    assert_matches_paper(synthetic(130, 90, "RGBA"), scales=[16, 240, 460, 911])
    assert_matches_paper(synthetic(90, 130, "P", seed=2), scales=[32, 256, 686])
    assert_matches_paper(synthetic(70, 60, "I;16"), scales=[48, 320])


def test_short_side_already_at_scale_is_not_resized():
    # torchvision returns the image unchanged when the size matches: S=256 and S=224 here.
    assert_matches_paper(synthetic(256, 341, seed=3), scales=[224, 256])
    assert_matches_paper(synthetic(300, 224, seed=4), scales=[224, 235])


@pytest.mark.slow
def test_huge_image_subset_of_scales():
    assert_matches_paper(synthetic(2000, 1500, seed=5), scales=[10, 128, 256, 672, 1024])


def test_indices_select_and_order_transforms():
    image = synthetic(97, 61, seed=6)
    wanted = [STANDARD_CROP_INDEX, 5, 323, 5]
    sub = zoom_crops(image, indices=wanted)
    assert sub.shape == (4, 3, 224, 224)
    for pos, k in enumerate(wanted):
        t = transform_info(k)
        assert torch.equal(sub[pos], paper_crop(image, t.scale, t.row, t.col))


def test_standard_crop_is_resize_256_centre_crop_and_differs_from_the_zoom():
    image = photo("astronaut").resize((500, 301))
    reference = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC),
                           T.CenterCrop(224), T.PILToTensor()])(image)
    assert torch.equal(standard_crop(image), reference)
    # Resized to 425×256: the centre crop starts at (16, 100), the middle zoom anchor (127, 211)
    # puts its crop at (15, 99), so the two notions really differ.
    assert not torch.equal(standard_crop(image), zoom_crops(image, [STANDARD_CROP_INDEX])[0])


# --- the torch path -----------------------------------------------------------------------------

def test_torch_path_within_documented_tolerance():
    images = [photo("coffee").resize((200, 133)), synthetic(61, 97, seed=7), synthetic(8, 5)]
    fast = zoom_crops_torch([image_to_tensor(im) for im in images], "cpu")
    assert fast.shape == (3, 324, 3, 224, 224) and fast.dtype == torch.uint8
    for im, got in zip(images, fast, strict=True):
        diff = (zoom_crops(im).int() - got.int()).abs()
        assert int(diff.max()) <= 2  # module docstring: max 2 grey levels
        assert float((diff > 0).float().mean()) < 1e-3  # ~0.02 % of pixels differ


def test_torch_path_batch_tensor_and_indices():
    a, b = synthetic(40, 30, seed=8), synthetic(40, 30, seed=9)
    batch = torch.stack([image_to_tensor(a), image_to_tensor(b)])
    wanted = [0, STANDARD_CROP_INDEX, 323]
    fast = zoom_crops_torch(batch, "cpu", indices=wanted)
    assert fast.shape == (2, 3, 3, 224, 224)
    for im, got in zip((a, b), fast, strict=True):
        assert int((zoom_crops(im, wanted).int() - got.int()).abs().max()) <= 2
    with pytest.raises(InvalidValueError):
        zoom_crops_torch([batch[0].float()], "cpu")


# --- the paper's procedure itself, and imhard bench zoom --------------------------------------

def test_reference_crops_are_the_papers_and_zoom_crops_equal_them():
    from imagenet_hard.zoom import reference_crops

    image = synthetic(41, 29, seed=4)
    ref = reference_crops(image)
    assert ref.dtype == torch.float32 and ref.shape == (324, 3, 224, 224)
    assert torch.equal(zoom_crops(image), (ref * 255).round().to(torch.uint8))
    for k in (0, 100, 200, 323):                    # and the independent oracle above
        s, i, j = k // 9, (k % 9) // 3, k % 3
        assert torch.equal((ref[k] * 255).round().to(torch.uint8),
                           paper_crop(image, PAPER_SCALES[s], i, j))


def test_bench_zoom_command_times_both_and_prints_the_ratio(tmp_path):
    from click.testing import CliRunner

    from imagenet_hard.cli import main

    path = tmp_path / "small.png"
    synthetic(40, 30, seed=10).save(path)
    result = CliRunner().invoke(main, ["bench", "zoom", str(path), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "config:    images 1, crops 324, CPU threads 1" in result.output
    rates = {}
    for role in ("reference", "ours", "also"):
        line = next(ln for ln in result.output.splitlines() if ln.startswith(role + " "))
        rates[role] = float(line.split("crops/s")[0].split()[-1])
        assert rates[role] > 0
    assert "zoom_crops_torch on cpu" in result.output
    ratio = float(result.output.split("\nratio")[1].split("x")[0])
    assert ratio == pytest.approx(rates["ours"] / rates["reference"], rel=0.01)
    assert "(target ≥ 10x:" in result.output
    missing = CliRunner().invoke(main, ["bench", "zoom", str(tmp_path / "nope.jpg")])
    assert missing.exit_code == 1 and "nope.jpg does not exist" in missing.output
    assert "Traceback" not in missing.output
