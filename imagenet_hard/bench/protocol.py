"""``imhard bench protocol``: what each mining-protocol knob changes, on the same crops.

The reference is the judge under a protocol (``paper`` by default) on every one of the 324 crops
of some images (default: the sample photos). Each variant changes one knob — every other
precision, the other normalisation of a zero-shot judge, for a classifier CLIP's mean/std in
place of its own (what a pipeline normalising every judge like CLIP would feed it), and for a
zero-shot judge at fp16 the other fp16 arithmetic (``math``: ``clip.load``'s fp16 weights, head
and logits, which ``paper`` runs, against fp16 autocast over fp32 weights). For each the
report gives crops/s and, against the reference, the fraction of crops whose top-1 within the
label space changes, the crop verdicts that flip, and the images whose candidate status flips:
the evidence behind the protocol's choices (issue 11).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ..errors import InvalidValueError
from ..jobs import resolve_device
from ..judges import judge_kind
from ..label_rules import objectnet_rule
from ..labels import NUM_CLASSES, label_space_indices
from ..mining.run import build_judge, check_protocol, resolve_protocol
from ..mining_protocol import (
    FP16_WEIGHTS,
    NORMALIZATIONS,
    OWN,
    PRECISIONS,
    ZERO_SHOT,
    MiningProtocol,
    math_mode,
)
from ..models.preprocess import CLIP_MEAN, CLIP_STD
from ..pixels import open_image
from ..zoom import zoom_crops
from .mine import _bench_rows
from .report import BenchReport, Timing

#: The variants one can ask for: the other normalisation, the other fp16 arithmetic of a
#: zero-shot judge (``math``), or a precision.
VARIANTS = ("normalization", *PRECISIONS, "math")


def _variants(spec: str, judge, dev, proto: MiningProtocol, vary) -> list[tuple[str, object]]:
    """(label, judge) for each single-knob change of ``proto`` named in ``vary``."""
    from ..judges import ModuleJudge, create_judge

    kind = judge_kind(spec)
    out = []
    for precision in PRECISIONS:
        if precision in vary and precision != proto.precision:
            other = replace(proto, precision=precision)
            out.append((f"precision {precision} ({math_mode(kind, other)})",
                        build_judge(spec, dev, other)))
    if "math" in vary:
        clip_load = math_mode(kind, proto) == FP16_WEIGHTS
        label = ("fp16 autocast over fp32 weights" if clip_load else
                 "clip.load fp16 weights, head and logits")
        out.append((label, create_judge(spec, dev, precision="fp16",
                                        normalization=proto.normalization,
                                        clip_load_fp16=not clip_load)))
    if "normalization" not in vary:
        return out
    if proto.normalization in NORMALIZATIONS:
        other = next(n for n in NORMALIZATIONS if n != proto.normalization)
        out.append((f"normalization {other}",
                    build_judge(spec, dev, replace(proto, normalization=other))))
    elif proto.normalization == OWN and isinstance(judge, ModuleJudge):
        out.append(("CLIP mean/std instead of its own (not a mining option)",
                    ModuleJudge(f"{judge.name} (CLIP mean/std)", judge.model, device=dev,
                                mean=CLIP_MEAN, std=CLIP_STD, precision=proto.precision)))
    return out


def _answers(judge, crops: list, spaces: list, labels: list, batch_size: int):
    """(top-1 within each image's space per crop, correct per crop, seconds) for all images."""
    import torch

    top1, correct, seconds = [], [], 0.0
    for x, space, label in zip(crops, spaces, labels, strict=True):
        mask = torch.full((NUM_CLASSES,), -torch.inf)
        mask[list(space)] = 0.0
        t = time.perf_counter()
        logits = torch.cat([judge(x[i:i + batch_size]).cpu()
                            for i in range(0, x.shape[0], batch_size)])
        seconds += time.perf_counter() - t
        best = (logits.float() + mask).argmax(dim=1)
        top1.append(best)
        correct.append(torch.isin(best, torch.tensor(list(label))))
    return torch.cat(top1), correct, seconds


def bench_protocol(judge: str = "efficientnet-lite0", images: int = 9, source: str | None = None,
                   home=None, device=None, batch_size: int = 64, protocol: str | None = None,
                   objectnet_labels: str | None = None, vary=("normalization", *PRECISIONS),
                   echo=print, precision: str | None = None) -> BenchReport:
    """The judge ``judge`` (a spec) under ``protocol`` (its precision overridden by
    ``precision``, if given) against the one-knob variants named in ``vary`` (see
    :data:`VARIANTS`), on all 324 crops of ``images`` images of ``source`` (default: the sample
    photos)."""
    check_protocol(judge, protocol, precision=precision, objectnet_labels=objectnet_labels)
    if not vary or not set(vary) <= set(VARIANTS):
        raise InvalidValueError(f"vary must name some of {', '.join(VARIANTS)}, got {vary!r}")
    dev = resolve_device(device)
    proto = resolve_protocol(judge, dev.type, protocol, precision=precision,
                             objectnet_labels=objectnet_labels)
    if "math" in vary and (judge_kind(judge) != ZERO_SHOT or proto.precision != "fp16"):
        raise InvalidValueError(f"vary math compares two fp16 arithmetics of a zero-shot "
                                f"judge; {judge} runs at {proto.precision} here, so pass a CLIP "
                                "judge with precision fp16")
    ref_judge = build_judge(judge, dev, proto)
    variants = _variants(judge, ref_judge, dev, proto, vary)
    with tempfile.TemporaryDirectory(prefix="imhard-bench-protocol-") as tmp:
        rows, table_spaces, work = _bench_rows(source, images, home, Path(tmp))
        judged = [objectnet_rule(r, proto.objectnet_labels) for r in rows]
        spaces = [label_space_indices(j.label_space, table_spaces) for j in judged]
        labels = [j.label for j in judged]
        crops = [zoom_crops(open_image(work / r.path)) for r in rows]
    n = sum(c.shape[0] for c in crops)
    echo(f"judging {n} crops under {proto.describe()} …")
    ref_top1, ref_ok, ref_s = _answers(ref_judge, crops, spaces, labels, batch_size)
    timings, results = [], {"crops": n, "reference candidates": sum(not c.any() for c in ref_ok)}
    for label, variant in variants:
        echo(f"judging them with {label} …")
        top1, ok, secs = _answers(variant, crops, spaces, labels, batch_size)
        timings.append(Timing(label, n, secs))
        pairs = list(zip(ok, ref_ok, strict=True))
        changed = int((top1 != ref_top1).sum())
        results[f"{label}: top-1 changed"] = f"{changed / n:.2%}"
        results[f"{label}: crops whose top-1 changed"] = changed
        results[f"{label}: crop verdicts flipped"] = sum(int((a != b).sum()) for a, b in pairs)
        results[f"{label}: candidates flipped"] = sum(bool(a.any()) != bool(b.any())
                                                      for a, b in pairs)
    if not timings:
        timings.append(Timing("(no variant)", n, ref_s))
    return BenchReport(
        name="protocol", unit="crops",
        subject=f"what each mining-protocol knob changes, judge {ref_judge.name}",
        reference=Timing(f"{proto.name} ({math_mode(judge_kind(judge), proto)}, normalization "
                         f"{proto.normalization})", n, ref_s),
        ours=timings[0], variants=tuple(timings[1:]),
        config={"judge": str(ref_judge.name), "device": str(dev), "images": len(crops),
                "protocol": proto.describe()},
        results=results,
        notes=("top-1 is within each image's label space; a candidate is an image none of whose "
               "324 crops is right",))
