"""Test-time augmentation (``imhard score --tta``, paper section 4.6): score each image's crops
(the zoom transforms of a group as mining makes them, :mod:`imagenet_hard.zoom`, or the 5/10
standard crops) and aggregate their softmax outputs by the mean or the renormalised per-class
maximum. The harness makes the crops, so it reads the submission's ``transform`` for the
normalisation and refuses a step it cannot account for. docs/scoring.md states the modes in full.
Torch is imported lazily.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from .. import zoom
from ..errors import InvalidValueError
from ..pixels import to_rgb
from ..registry import Registry
from .contract import ContractError

CROP_SETS = ("zoom-in", "zoom-out", "zoom-224", "5-crop", "10-crop")
AGGREGATIONS = ("mean", "max")
MULTI_CROP_SCALE = 256

#: Transform steps the harness knows how to replace (geometry) or reproduce (tensor, normalise).
GEOMETRY_STEPS = {"Resize", "CenterCrop"}
TENSOR_STEPS = {"ToTensor", "MaybeToTensor", "PILToTensor", "ConvertImageDtype", "ToImage",
                "ToDtype", "ToImageTensor"}


@dataclass(frozen=True)
class TtaMode:
    """A crop set and an aggregation; ``transforms`` are the zoom transform indices used (zoom
    sets), ``origin`` the run whose cover restricted them (``--tta-from``)."""

    name: str
    crops: str
    aggregate: str
    transforms: tuple[int, ...] = ()
    origin: dict = field(default_factory=dict)

    @property
    def n_crops(self) -> int:
        return {"5-crop": 5, "10-crop": 10}.get(self.crops, len(self.transforms))

    def describe(self) -> dict:
        """What the result JSON records (and the cache key hashes)."""
        return {"mode": self.name, "crops": self.crops, "aggregate": self.aggregate,
                "n_crops": self.n_crops, "transforms": list(self.transforms),
                "origin": dict(self.origin)}

    def key(self) -> str:
        text = json.dumps(self.describe(), sort_keys=True).encode()
        return f"{self.name}-{hashlib.sha256(text).hexdigest()[:12]}"

    @classmethod
    def from_dict(cls, data: dict) -> TtaMode:
        """The mode a result records (for ``verify``), checked against the registry."""
        base = get_mode(str(data.get("mode", "")))
        transforms = tuple(int(t) for t in data.get("transforms") or ())
        if base.crops.startswith("zoom") and (transforms != base.transforms or data.get("origin")):
            return restrict(base, transforms, data.get("origin") or {})
        return base

    @classmethod
    def from_record(cls, data) -> TtaMode:
        """The mode a result's ``tta`` field names, refused unless the field is exactly what
        :meth:`describe` writes for it: a board shows the mode by name, so crops, aggregation or
        counts that say otherwise are a tampered record, not a variant."""
        if not isinstance(data, dict):
            raise InvalidValueError("result field 'tta' must be an object naming the mode")
        mode = cls.from_dict(data)
        want = mode.describe()
        wrong = sorted(k for k in set(want) | set(data) if data.get(k, None) != want.get(k, None))
        if wrong:
            raise InvalidValueError(f"result field 'tta' names mode {mode.name} but its "
                                    f"{', '.join(str(k)[:40] for k in wrong[:6])} differ from "
                                    "that mode's; a tta field is what `imhard score --tta` writes")
        return mode


def _make_modes() -> None:
    for crops in CROP_SETS:
        group = zoom.group_indices(crops) if crops.startswith("zoom") else ()
        for agg in AGGREGATIONS:
            mode = TtaMode(f"{crops}-{agg}", crops, agg, tuple(group))
            TTA_MODES.register(mode.name)(mode)
        if not crops.startswith("zoom"):
            TTA_MODES.register(crops)(TTA_MODES.get(f"{crops}-mean"))


TTA_MODES: Registry[TtaMode] = Registry("TTA mode", None, _make_modes)


def get_mode(name: str) -> TtaMode:
    """The registered mode ``name`` (an unknown one raises with close matches)."""
    return TTA_MODES.get(name)


def restrict(mode: TtaMode, allowed, origin: dict) -> TtaMode:
    """``mode`` with its zoom transforms restricted to ``allowed`` (e.g. a greedy cover)."""
    if not mode.crops.startswith("zoom"):
        raise InvalidValueError(f"--tta-from restricts zoom transforms; {mode.name} uses fixed "
                                "crops")
    allowed = {int(t) for t in allowed}
    kept = tuple(t for t in mode.transforms if t in allowed)
    if not kept:
        raise InvalidValueError(f"the cover of run {origin.get('run', '?')!r} holds no "
                                f"{mode.crops} transform; use the whole group (no --tta-from)")
    return TtaMode(mode.name, mode.crops, mode.aggregate, kept, dict(origin))


def child_batch(mode: TtaMode | None, batch_size: int) -> tuple[int, dict | None]:
    """(images per child batch, the job's ``tta`` spec) for ``--batch-size`` ``batch_size``:
    under ``mode`` it counts crops per forward pass, so a batch holds as many images as fit."""
    if mode is None:
        return batch_size, None
    return max(1, batch_size // mode.n_crops), {**mode.describe(), "forward_batch": batch_size}


# -- in the child: crops, normalisation, aggregation ------------------------------------------

def normalization(transform) -> tuple[list[float], list[float]]:
    """(mean, std) of a submission's transform, or an error saying why --tta cannot use it."""
    if type(transform).__name__ == "ImageClassification":  # torchvision weights preset
        size = list(getattr(transform, "crop_size", [zoom.CROP]))
        _check_size(size)
        return [float(v) for v in transform.mean], [float(v) for v in transform.std]
    steps = getattr(transform, "transforms", None)
    if not isinstance(steps, (list, tuple)):
        raise ContractError(f"--tta needs a transform it can read (a torchvision Compose ending in "
                            f"ToTensor + Normalize, or weights.transforms()); got "
                            f"{type(transform).__name__}")
    mean = std = None
    for step in steps:
        name = type(step).__name__
        if name == "Normalize":
            mean, std = ([float(v) for v in np.asarray(step.mean).reshape(-1)],
                         [float(v) for v in np.asarray(step.std).reshape(-1)])
        elif name == "CenterCrop":
            _check_size(list(np.atleast_1d(step.size)))
        elif name == "Lambda" and getattr(step, "lambd", None) is to_rgb:
            continue  # the model layer's own RGB step: the zoom crops are RGB already
        elif name not in GEOMETRY_STEPS | TENSOR_STEPS:
            raise ContractError(f"--tta cannot tell what the transform step {name} does to a zoom "
                                "crop; use a transform of Resize/CenterCrop, ToTensor and "
                                "Normalize only, or score without --tta")
    if mean is None:
        raise ContractError("--tta found no Normalize in the submission's transform; add "
                            "T.Normalize(mean, std) after ToTensor so the crops can be normalised")
    return mean, std


def _check_size(size: list) -> None:
    if any(int(s) != zoom.CROP for s in size):
        raise ContractError(f"--tta makes the paper's 224×224 crops; this submission's transform "
                            f"makes {size} inputs. Score it without --tta")


def multi_crops(image, flip: bool):
    """The 5 (or, with ``flip``, 10) standard crops of ``image`` as uint8 (K, 3, 224, 224)."""
    import torch
    from PIL import Image

    rgb = zoom.to_rgb(image)
    size = zoom.resized_size(rgb.width, rgb.height, MULTI_CROP_SCALE)
    resized = np.asarray(rgb if size == rgb.size else rgb.resize(size, Image.BICUBIC))
    height, width, c = resized.shape[0], resized.shape[1], zoom.CROP
    # corners, then the centre with torchvision's CenterCrop arithmetic (as FiveCrop does)
    top, left = int(round((height - c) / 2.0)), int(round((width - c) / 2.0))
    boxes = [(0, 0), (0, width - c), (height - c, 0), (height - c, width - c), (top, left)]
    crops = [resized[y:y + c, x:x + c] for y, x in boxes]
    if flip:
        crops += [crop[:, ::-1] for crop in crops]
    return torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).copy())


def make_crops(mode: TtaMode, image):
    """The crops of ``image`` that ``mode`` scores, uint8 (K, 3, 224, 224)."""
    if mode.crops == "5-crop":
        return multi_crops(image, flip=False)
    if mode.crops == "10-crop":
        return multi_crops(image, flip=True)
    return zoom.zoom_crops(image, mode.transforms).contiguous()


def aggregate(probs: np.ndarray, how: str) -> np.ndarray:
    """(B, K, 1000) probabilities → (B, 1000): the mean, or the renormalised per-class maximum."""
    if how == "mean":
        return probs.mean(axis=1)
    if how == "max":
        top = probs.max(axis=1)
        return top / top.sum(axis=1, keepdims=True)
    raise InvalidValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {how!r}")


def check_submission(sub) -> None:
    """Raise a ContractError unless ``sub`` is of the model + transform form with a transform
    :func:`normalization` can read."""
    if sub.form != "model":
        raise ContractError("--tta applies to submissions of the model + transform form; this "
                            "one defines load(device) and makes its own crops")
    normalization(sub.module.transform)


def prepare(model, transform, spec: dict, device: str):
    """(each image → its uint8 crops, a batch of them → the aggregated (B, 1000) probabilities,
    the model run ``spec["forward_batch"]`` crops at a time): the scoring child's model form
    under ``--tta``."""
    import torch

    from .contract import to_array
    from .metrics import to_probabilities

    mode = TtaMode.from_dict(spec)
    mean, std = normalization(transform)
    forward = max(1, int(spec["forward_batch"]))
    shape = (1, len(mean), 1, 1)
    mean_t = torch.tensor(mean, device=device).view(shape)
    std_t = torch.tensor(std, device=device).view(shape)

    def run(x):
        flat = x.flatten(0, 1)
        rows = []
        for i in range(0, len(flat), forward):
            xb = flat[i:i + forward].to(device, non_blocking=True).float().div_(255)
            rows.append(to_array(model((xb - mean_t) / std_t), len(xb)))
        probs = to_probabilities(np.concatenate(rows)).reshape(x.shape[0], x.shape[1], -1)
        return aggregate(probs, mode.aggregate)

    return (lambda image: make_crops(mode, to_rgb(image))), run
