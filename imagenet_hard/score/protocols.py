"""Each scored set's published protocol (:data:`PROTOCOLS`, each stating its rule and reference),
and ImageNet-C's aggregate numbers. A :class:`Protocol` says which rows of a source table count,
which labels make a prediction correct, which classes a prediction is ranked among (the top-5 is
taken within them) and what is cropped off an image first. Torch-free.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..catalog import IMAGENET_C as IMAGENET_C_SOURCE
from ..catalog import file_stem, parse_origin
from ..catalog import parse as parse_table
from ..corruptions.params import BENCHMARK as IMAGENET_C_BENCHMARK
from ..corruptions.params import HELD_OUT as IMAGENET_C_HELD_OUT
from ..corruptions.params import NAMES as IMAGENET_C_NAMES
from ..corruptions.params import SEVERITIES
from ..errors import InvalidValueError
from ..label_rules import objectnet_rule
from ..labels import label_space_indices
from ..registry import Registry
from .metrics import ECE_BINS

#: Origin prefix of ImageNet-C rows: ``imagenet_c/<corruption>/<severity>``.
IMAGENET_C_ORIGIN = file_stem(IMAGENET_C_SOURCE) + "/"


#: The published benchmark's protocol, as every single result states it.
IMAGENET_HARD_TEXT = (
    "ImageNet-Hard protocol: every row of the split is scored (accuracy over all rows); the "
    "submission sees each image as an RGB PIL image and applies its own preprocessing (a "
    "torchvision Compose's leading Resize/CenterCrop run on the stored image, converted to RGB "
    "after them as the authors' notebook did) "
    "(reference models: resize 256, centre crop 224, ImageNet normalisation); a prediction is "
    "correct when its top-1 class over all 1000 ImageNet-1k classes is in the row's label set, "
    "top-5 correct when any of its top-5 is. Output rows that are not probabilities "
    "(negative, or not summing to 1 within 1e-3) are softmaxed. 95% interval: Wilson score "
    f"interval. ECE: {ECE_BINS} equal-width bins over the top-1 probability. images/s: rows "
    "divided by the time spent producing them (decoding, preprocessing, model; load excluded)."
)

def _label(row) -> tuple[int, ...]:
    return tuple(int(x) for x in row["label"])


def _real(row) -> tuple[int, ...]:
    from ..builders.imagenet_real import real_only

    return real_only(row["id"])


def _objectnet(row) -> tuple[int, ...]:
    return objectnet_rule(row, "all-mapped").label


@dataclass(frozen=True)
class Protocol:
    """How one set is scored (see the module docstring)."""

    name: str
    text: str                                   # the rule, as results and README state it
    reference: str
    space: str = "in1k"                         # label space predictions are ranked within
    border: int = 0                             # pixels cropped off each side first
    metric: str = "accuracy"                    # "error" for ImageNet-C
    labels: Callable[[Mapping], tuple[int, ...]] = field(default=_label, repr=False)

    def classes(self, recorded: dict[str, list[int]] | None = None) -> tuple[int, ...] | None:
        """Sorted class indices the top-5 is taken among (None: all 1000)."""
        if self.space == "in1k":
            return None
        classes = label_space_indices(self.space, recorded)
        if len(classes) < 5:
            raise InvalidValueError(f"label space {self.space} has {len(classes)} classes; a "
                                    "top-5 needs at least 5")
        return classes

    def key(self, recorded: dict[str, list[int]] | None = None) -> str:
        """Names what the child computes for a row under this protocol (classes and border), for
        the prediction cache: two protocols with the same key share predictions."""
        classes = self.classes(recorded)
        digest = "all" if classes is None else hashlib.sha256(
            ",".join(map(str, classes)).encode()).hexdigest()[:12]
        return f"c{digest}-b{self.border}"


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def register_protocol(p: Protocol) -> Protocol:
    return PROTOCOLS.register(p.name)(p)


_TOP = ("correct when the top-1 is in the row's label set, top-5 correct when any of the top-5 "
        "is; accuracy over the scored rows with a 95% Wilson interval. The submission sees each "
        "image as an RGB PIL image at its stored resolution and applies its own preprocessing.")

IN1K = register_protocol(Protocol(
    "in1k", "Top-1 and top-5 over all 1000 ImageNet-1k classes; " + _TOP,
    "ImageNet val: Russakovsky et al., IJCV 2015; ImageNet-Sketch: Wang et al., NeurIPS 2019; "
    "ImageNetV2: Recht et al., ICML 2019"))
REAL = register_protocol(Protocol(
    "real", "ReaL: images whose ReaL label list is empty are left out; predictions over all 1000 "
    "classes are correct when in the image's ReaL set (not the IN ∪ ReaL union); " + _TOP,
    "Beyer et al., Are we done with ImageNet? 2020 (timm RealLabelsImagenet)", labels=_real))
IN_A = register_protocol(Protocol(
    "in-a-200", "ImageNet-A: top-1 and top-5 among the 200 ImageNet-A classes only (probabilities "
    "renormalised over them); " + _TOP,
    "Hendrycks et al., Natural Adversarial Examples, CVPR 2021", space="in_a_200"))
IN_R = register_protocol(Protocol(
    "in-r-200", "ImageNet-R: top-1 and top-5 among the 200 ImageNet-R classes only (probabilities "
    "renormalised over them); " + _TOP,
    "Hendrycks et al., The Many Faces of Robustness, ICCV 2021", space="in_r_200"))
OBJECTNET = register_protocol(Protocol(
    "objectnet", "ObjectNet: the 113 classes that overlap ImageNet-1k; 2 pixels cropped off every "
    "border before the submission sees the image; predictions ranked among the union of the "
    "ImageNet classes ObjectNet's mapping names, correct when the prediction is any ImageNet "
    "class mapped to the image's ObjectNet class; " + _TOP,
    "Barbu et al., ObjectNet, NeurIPS 2019; 2 px crop: objectnet_pytorch_dataloader.py of "
    "abarbu/objectnet-template-pytorch; mapped-class rule: modestyachts/imagenet-testbed "
    "eval_settings/objectnet.py", space="objectnet_113", border=2, labels=_objectnet))
IMAGENET_C = register_protocol(Protocol(
    "imagenet-c", "ImageNet-C: top-1 error (1 - accuracy) over all 1000 classes per corruption "
    "and severity, labels those of the uncorrupted image; " + _TOP,
    "Hendrycks & Dietterich, Benchmarking Neural Network Robustness to Common Corruptions and "
    "Perturbations, ICLR 2019", metric="error"))
IMAGENET_HARD = register_protocol(Protocol(
    "imagenet-hard", IMAGENET_HARD_TEXT,
    "Taesiri et al., ImageNet-Hard, NeurIPS 2023 Datasets and Benchmarks"))

#: The protocol of a table no registered builder made (a bench's), by its label space.
SPACE_PROTOCOLS = {"in1k": "in1k", "in_a_200": "in-a-200", "in_r_200": "in-r-200",
                   "objectnet_113": "objectnet"}


def protocol_for(source: str, label_space: str, origin: str) -> Protocol:
    """The protocol of a source table: ImageNet-C by origin, else the one its builder declares
    (``SourceBuilder.protocol``), else by the label space its rows declare."""
    from ..sources import SOURCES

    if origin.startswith(IMAGENET_C_ORIGIN):
        return IMAGENET_C
    key = parse_table(source).source
    name = SOURCES.get(key).protocol if key in SOURCES else SPACE_PROTOCOLS.get(label_space)
    if name is None:
        raise InvalidValueError(f"source {source!r} has label space {label_space!r}, for which "
                                "no scoring protocol is defined")
    return PROTOCOLS.get(name)


# -- ImageNet-C --------------------------------------------------------------------------------

def corruption_of(origin: str) -> tuple[str, int]:
    """``imagenet_c/fog/3`` → ``("fog", 3)``; an error for anything else."""
    variant = parse_origin(origin)
    if variant is None:
        raise InvalidValueError(f"origin {origin!r} is not imagenet_c/<corruption>/<1..5> with "
                                f"a corruption among {', '.join(IMAGENET_C_NAMES)}")
    return variant


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def imagenet_c_summary(errors: Mapping[tuple[str, int], float],
                       baseline: Mapping[tuple[str, int], float] | None = None) -> dict:
    """ImageNet-C's aggregates (docs/scoring.md's table states them) from top-1 errors
    E[(corruption, severity)] (fractions); ``mce`` is None without a ``baseline`` (AlexNet's
    errors) covering every (corruption, severity) scored, and ``complete`` says whether all
    15 × 5 benchmark tables are present (the published mCE needs them all)."""
    by_c: dict[str, dict[int, float]] = {}
    for (c, s), e in errors.items():
        by_c.setdefault(c, {})[s] = float(e)
    per_c = {c: _mean(sev.values()) for c, sev in by_c.items()}
    bench = [c for c in IMAGENET_C_BENCHMARK if c in by_c]
    held = [c for c in IMAGENET_C_HELD_OUT if c in by_c]
    out = {
        "per_corruption": {c: per_c[c] for c in IMAGENET_C_NAMES if c in per_c},
        "mean_error_benchmark": _mean(per_c[c] for c in bench),
        "mean_error_held_out": _mean(per_c[c] for c in held),
        "benchmark_corruptions": len(bench), "held_out_corruptions": len(held),
        "complete": all(set(by_c.get(c, {})) == set(SEVERITIES) for c in IMAGENET_C_BENCHMARK),
        "ce": None, "mce": None,
    }
    covered = baseline is not None and bench and all(
        (c, s) in baseline for c in bench for s in by_c[c])
    if covered:
        ce = {}
        for c in bench:
            denom = sum(float(baseline[(c, s)]) for s in by_c[c])
            if denom <= 0:
                raise InvalidValueError(f"AlexNet's error on {c} is 0 at every severity scored; "
                                        "the corruption error is undefined")
            ce[c] = sum(by_c[c].values()) / denom
        out["ce"], out["mce"] = ce, _mean(ce.values())
    return out

