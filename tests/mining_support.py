"""Synthetic sources and a controlled judge for the mining tests.

Images are random noise (PNG, so decoding is exact), which makes every one of an image's 324 zoom
crops distinct. :class:`CropIndex` hashes each crop that :func:`imagenet_hard.zoom.zoom_crops`
makes (and the standard 1-crop, as :data:`ONE_CROP`), so :class:`ControlledJudge` can tell from a crop's pixels which image and transform it is,
and answer whatever the test planned for that (image, crop).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imagenet_hard import labels, zoom
from imagenet_hard.records import SourceRow, make_id, write_source_table

#: Kinds of answer the controlled judge gives for a crop.
RIGHT = "right"                # top-1 over all 1000 classes is the (last) label
RIGHT_MASKED = "right_masked"  # top-1 over 1000 is outside the label space; within it, the label
WRONG = "wrong"                # top-1 a wrong class inside the space
WRONG_MASKED = "wrong_masked"  # top-1 outside the space, next a wrong class inside it
CORRECT_KINDS = (RIGHT, RIGHT_MASKED)
#: The crop index a plan uses for the standard 1-crop (resize 256, centre crop 224).
ONE_CROP = zoom.N_TRANSFORMS


@dataclass(frozen=True)
class SynthImage:
    member: str
    size: tuple[int, int]  # (width, height)
    label: tuple[int, ...]
    seed: int
    paper: tuple[int, ...] | None = None  # ObjectNet rows: the authors' single class


def make_source(home: Path, name: str, images: list[SynthImage], label_space: str = "in1k",
                extra_spaces: dict[str, list[int]] | None = None) -> list[SourceRow]:
    """Write noise images under ``home/sources/<name>/`` and their source table."""
    rows = []
    for im in images:
        rel = Path("sources") / name / im.member
        dest = home / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(im.seed)
        w, h = im.size
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(dest)
        rows.append(SourceRow(
            id=make_id(name, im.member), origin=name, path=str(rel), label=list(im.label),
            english_label=labels.english_labels(im.label), label_space=label_space,
            width=w, height=h, sha256=hashlib.sha256(dest.read_bytes()).hexdigest(),
            label_paper=list(im.paper) if im.paper else None,
        ))
    write_source_table(rows, home / "sources" / f"{name}.parquet", name, extra_spaces)
    return rows


def crop_key(crop: torch.Tensor) -> bytes:
    return hashlib.blake2b(crop.contiguous().numpy().tobytes(), digest_size=16).digest()


@dataclass
class CropIndex:
    """crop pixels → (image id, transform index), over every crop of the given images."""

    keys: dict[bytes, tuple[str, int]] = field(default_factory=dict)

    def add(self, home: Path, row: SourceRow) -> None:
        with Image.open(home / row.path) as im:
            crops = zoom.zoom_crops(im)
            standard = zoom.standard_crop(im)
        for idx, crop in enumerate(crops):
            key = crop_key(crop)
            if key in self.keys:
                raise AssertionError(f"{row.id} crop {idx} equals {self.keys[key]}: not identifiable")
            self.keys[key] = (row.id, idx)
        # The standard 1-crop (judged by exhaustive runs) is ONE_CROP unless its pixels are those
        # of a zoom crop, in which case the judge answers as for that crop, as a real one would.
        self.keys.setdefault(crop_key(standard), (row.id, ONE_CROP))


@dataclass
class Plan:
    """What the judge answers for an image: per-crop kinds (default ``default``), and the crop
    it is most confident on (its top-1 there is ``confident_class``)."""

    label: tuple[int, ...]
    space: tuple[int, ...]
    kinds: dict[int, str] = field(default_factory=dict)
    default: str = WRONG
    confident_crop: int | None = None

    def kind(self, crop: int) -> str:
        return self.kinds.get(crop, self.default)

    def wrong_class(self) -> int:
        return next(c for c in self.space if c not in self.label)

    def confident_class(self) -> int:
        return [c for c in self.space if c not in self.label][1]

    def outside_class(self) -> int:
        inside = set(self.space)
        return next(c for c in range(1000) if c not in inside)

    def logits(self, crop: int) -> torch.Tensor:
        out = torch.zeros(1000)
        kind = self.kind(crop)
        if kind in (RIGHT_MASKED, WRONG_MASKED):
            out[self.outside_class()] = 9.0
        out[self.label[-1] if kind in CORRECT_KINDS else self.wrong_class()] = 5.0
        if crop == self.confident_crop:
            out[self.confident_class()] = 8.0
        return out


class ControlledJudge:
    """A judge whose answer for each (image, crop) the test chose; records what it was shown."""

    name = "controlled"
    flops_per_image = 1.0e6

    def __init__(self, index: CropIndex, plans: dict[str, Plan], fail_on: set[str] | None = None):
        self.index, self.plans = index, plans
        self.fail_on = fail_on or set()
        self.seen: list[tuple[str, int]] = []

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        assert crops.dtype == torch.uint8 and tuple(crops.shape[1:]) == (3, 224, 224)
        rows = []
        for crop in crops:
            image_id, idx = self.index.keys[crop_key(crop)]
            if image_id in self.fail_on:
                raise RuntimeError(f"simulated crash on {image_id}")
            self.seen.append((image_id, idx))
            rows.append(self.plans[image_id].logits(idx))
        return torch.stack(rows)
