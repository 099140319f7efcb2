"""Mining protocols: the named settings that decide a crop's verdict besides the judge itself.

(Scoring has its own per-set protocols, :mod:`imagenet_hard.score.protocols`; this module is only
about how mining judges crops.)

Three knobs change which images a judge mines from the same sources (issue 11):

- ``normalization`` — the mean/std the uint8 crops are normalised with before a zero-shot (CLIP)
  judge sees them: ``imagenet`` (0.485, 0.456, 0.406 / 0.229, 0.224, 0.225) or ``clip`` (the
  weights' own; OpenAI CLIP's for ``clip-vit-l-14``). A classifier always uses its weights' own
  mean/std (``own``): another would only feed it images unlike those it was trained on.
- ``precision`` — ``fp32`` (no autocast), ``fp16`` or ``bf16``: autocast over fp32 weights,
  except a zero-shot judge at fp16 under ``paper``, which holds ``clip.load``'s fp16 weights and
  computes its head and logits in fp16 as the authors did (:func:`math_mode` names which; the
  run records it as ``math``).
- ``objectnet_labels`` — the ObjectNet rule of :mod:`imagenet_hard.label_rules`: ``paper`` (the
  authors' single class as label, their 113 classes as mask) or ``all-mapped``.

A protocol sets all three; a knob given by hand overrides just that one, and the run records the
result (``run.json``) and refuses to resume under another. Protocols:

- ``paper`` (the default, for every judge): the authors' scripts in taesiri/ZoomIsAllYouNeed.
  Zero-shot judges as ``src/evaluators/eval-CLIP.py``: ImageNet mean/std (its ``Normalize``),
  fp16 on CUDA as ``clip.load`` gives it there (fp16 weights by OpenAI's ``convert_weights``,
  head and logits in fp16; not autocast) and fp32 on the CPU. Near-ties stay as that arithmetic
  decides them: no fp32 re-judging, which the authors did not have. Classifiers as
  ``src/evaluators/eval-IN-trained.py``: their own mean/std (ImageNet's, for the torchvision
  weights it ran) and fp32 on every device (it ran plain fp32 on CUDA). ObjectNet: ``paper``.
- ``native``: each model as its weights were trained (CLIP's mean/std for CLIP), bf16 autocast on
  CUDA and fp32 on the CPU, ObjectNet's official ``all-mapped`` rule: what imagenet-hard did
  before it had protocols. A low-precision judge's near-ties are judged again in fp32, so a
  verdict does not depend on the batch size.

Torch-free: the CLI checks knobs while parsing, before any model loads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import InvalidValueError, unknown_name
from .label_rules import OBJECTNET_RULES, check_objectnet_rule
from .models.preprocess import NORMALIZATIONS, PRECISIONS
from .registry import normalize_name

ZERO_SHOT = "zero-shot"
#: The judge's own business: a classifier's own mean/std, or a built judge's own precision.
OWN = "own"
KNOBS = ("normalization", "precision", "objectnet_labels")
#: How summaries and the dataset card name each knob.
KNOB_NAMES = {"normalization": "normalization", "precision": "precision",
              "objectnet_labels": "ObjectNet labels"}
DEFAULT_PROTOCOL = "paper"
#: The math mode of a zero-shot judge at fp16 under ``paper``: ``clip.load``'s fp16 weights,
#: head and logits (``run.json``'s ``math``); otherwise ``fp32`` or ``<precision> autocast``.
FP16_WEIGHTS = "fp16 weights (clip.load)"


@dataclass(frozen=True)
class ProtocolRule:
    """What a named protocol sets: per judge kind (zero-shot or any other) and device type."""

    summary: str
    zero_shot_normalization: str
    zero_shot_precision: dict[str, str]   # device type ("cuda", else "cpu") -> precision
    other_precision: dict[str, str]
    objectnet_labels: str
    #: A zero-shot judge at fp16 holds clip.load's fp16 weights (else: fp16 autocast).
    clip_load_fp16: bool = False
    #: A low-precision judge's near-ties are judged again in fp32 (the mining engine).
    rejudge_near_ties: bool = True

    def defaults(self, kind: str, device_type: str) -> dict[str, str]:
        dev = "cuda" if device_type == "cuda" else "cpu"
        zero_shot = kind == ZERO_SHOT
        return {"normalization": self.zero_shot_normalization if zero_shot else OWN,
                "precision": (self.zero_shot_precision if zero_shot else self.other_precision)[dev],
                "objectnet_labels": self.objectnet_labels}


PROTOCOLS: dict[str, ProtocolRule] = {
    "paper": ProtocolRule(
        "the authors' scripts (taesiri/ZoomIsAllYouNeed): CLIP judges as eval-CLIP.py, ImageNet "
        "mean/std, fp16 on CUDA, fp32 on the CPU; classifiers as eval-IN-trained.py, their own "
        "mean/std, fp32; ObjectNet by the authors' 113 classes",
        "imagenet", {"cuda": "fp16", "cpu": "fp32"}, {"cuda": "fp32", "cpu": "fp32"}, "paper",
        clip_load_fp16=True, rejudge_near_ties=False),
    "native": ProtocolRule(
        "each model as trained (CLIP's own mean/std), bf16 autocast on CUDA, fp32 on the CPU; "
        "ObjectNet by all mapped classes (its official rule)",
        "clip", {"cuda": "bf16", "cpu": "fp32"}, {"cuda": "bf16", "cpu": "fp32"}, "all-mapped"),
}

#: What each knob value means, for help texts and the dataset card.
MEANINGS = {
    ("normalization", "imagenet"): "ImageNet's mean/std (0.485, 0.456, 0.406 / 0.229, 0.224, "
                                   "0.225), as eval-CLIP.py",
    ("normalization", "clip"): "the CLIP weights' own mean/std",
    ("normalization", OWN): "the classifier's own mean/std",
    ("precision", "fp32"): "fp32",
    ("precision", "fp16"): "fp16 autocast",
    ("precision", "bf16"): "bf16 autocast",
    ("precision", OWN): "the built judge's own precision",
    ("objectnet_labels", "paper"): "ObjectNet judged by the authors' single class per ObjectNet "
                                   "class (label) and their 113 classes (mask)",
    ("objectnet_labels", "all-mapped"): "ObjectNet judged by every mapped ImageNet class (label) "
                                        "and their union (mask)",
}


def _choice(option: str, value: str, choices) -> str:
    key = normalize_name(str(value))
    if key in choices:
        return key
    raise unknown_name(option, value, choices, key=key, n=2)


@dataclass(frozen=True)
class MiningProtocol:
    """A resolved protocol: its name, the three knobs' values, and which knobs were set away
    from what the named protocol gives this judge on this device (``overrides``)."""

    name: str
    normalization: str
    precision: str
    objectnet_labels: str
    overrides: tuple[str, ...] = ()

    def __post_init__(self):
        values = {"name": _choice("protocol", self.name, PROTOCOLS),
                  "normalization": _choice("normalization", self.normalization,
                                           (*NORMALIZATIONS, OWN)),
                  "precision": _choice("precision", self.precision, (*PRECISIONS, OWN)),
                  "objectnet_labels": check_objectnet_rule(self.objectnet_labels),
                  "overrides": tuple(self.overrides)}
        for key, value in values.items():
            object.__setattr__(self, key, value)
        if not set(self.overrides) <= set(KNOBS):
            raise InvalidValueError(f"protocol overrides must be among {', '.join(KNOBS)}, got "
                                    f"{list(self.overrides)}")

    def knobs(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in KNOBS}

    def describe(self) -> str:
        """One line: ``paper: normalization imagenet, precision fp32, ObjectNet labels paper``."""
        knobs = ", ".join(f"{KNOB_NAMES[k]} {v}"
                          + (" (overridden)" if k in self.overrides else "")
                          for k, v in self.knobs().items())
        return f"{self.name}: {knobs}"

    def to_json(self) -> dict:
        return {**asdict(self), "overrides": list(self.overrides)}

    @classmethod
    def from_json(cls, data) -> MiningProtocol:
        if not isinstance(data, dict) or set(data) != {"name", *KNOBS, "overrides"}:
            raise InvalidValueError(f"a protocol holds name, {', '.join(KNOBS)} and overrides, "
                                    f"got {data!r}")
        return cls(**{**data, "overrides": tuple(data["overrides"])})


def check_knobs(protocol: str | None = None, normalization: str | None = None,
                precision: str | None = None, objectnet_labels: str | None = None,
                kind: str | None = None, judge: str = "the judge") -> dict[str, str | None]:
    """The knobs' canonical values (None: the protocol's), or one sentence naming the bad one.

    ``kind`` (``zero-shot``, ``classifier``, ``registered``; None when not known) lets a
    normalisation given for a judge that has no choice fail here, before any model loads.
    """
    out = {
        "protocol": _choice("protocol", protocol or DEFAULT_PROTOCOL, PROTOCOLS),
        "normalization": None if normalization is None else
        _choice("normalization", normalization, NORMALIZATIONS),
        "precision": None if precision is None else _choice("precision", precision, PRECISIONS),
        "objectnet_labels": None if objectnet_labels is None else
        check_objectnet_rule(objectnet_labels),
    }
    if out["normalization"] is not None and kind not in (None, ZERO_SHOT):
        raise InvalidValueError(
            f"--normalization applies to zero-shot (CLIP) judges; {judge} normalises with its "
            "weights' own mean/std, so leave the option out")
    return out


def resolve(kind: str, device_type: str, protocol: str | None = None,
            normalization: str | None = None, precision: str | None = None,
            objectnet_labels: str | None = None, judge: str = "the judge") -> MiningProtocol:
    """The protocol a judge of ``kind`` runs under on a ``device_type`` device: the named
    protocol's values, with each knob given overriding that one."""
    asked = check_knobs(protocol, normalization, precision, objectnet_labels, kind, judge)
    name = asked.pop("protocol")
    base = PROTOCOLS[name].defaults(kind, device_type)
    knobs = {k: asked[k] if asked[k] is not None else base[k] for k in KNOBS}
    return MiningProtocol(name, **knobs, overrides=tuple(k for k in KNOBS if knobs[k] != base[k]))


def built_judge_protocol(judge, device_type: str, protocol: str | None = None,
                         normalization: str | None = None, precision: str | None = None,
                         objectnet_labels: str | None = None) -> MiningProtocol:
    """The protocol of a run given a built judge: its normalisation and precision are the
    judge's own (read from it when it says), so a knob asked that differs is an error."""
    own = {"normalization": getattr(judge, "normalization", OWN),
           "precision": judge_precision(judge)}
    for knob, asked in (("normalization", normalization), ("precision", precision)):
        if asked is not None and normalize_name(asked) != own[knob]:
            raise InvalidValueError(
                f"judge {getattr(judge, 'name', judge)!r} is already built with {knob} "
                f"{own[knob]}; build it with {knob} {asked}, or pass its spec instead")
    kind = ZERO_SHOT if own["normalization"] in NORMALIZATIONS else "classifier"
    resolved = resolve(kind, device_type, protocol, objectnet_labels=objectnet_labels)
    base = PROTOCOLS[resolved.name].defaults(kind, device_type)
    knobs = {**resolved.knobs(), **own}
    return MiningProtocol(resolved.name, **knobs,
                    overrides=tuple(k for k in KNOBS if knobs[k] != base[k] and knobs[k] != OWN))


def math_mode(kind: str, proto: MiningProtocol) -> str:
    """How a judge of ``kind`` computes under ``proto``: ``fp32``, ``own`` (a registered judge's
    business), :data:`FP16_WEIGHTS`, or ``fp16``/``bf16 autocast``. Torch-free."""
    if proto.precision in ("fp32", OWN):
        return proto.precision
    if kind == ZERO_SHOT and proto.precision == "fp16" and PROTOCOLS[proto.name].clip_load_fp16:
        return FP16_WEIGHTS
    return f"{proto.precision} autocast"


def judge_math(judge) -> str:
    """:func:`math_mode` of a built judge, read from it."""
    if getattr(judge, "weights_dtype", None) is not None:
        return FP16_WEIGHTS if str(judge.weights_dtype) == "torch.float16" else \
            f"{judge_precision(judge)} weights"
    precision = judge_precision(judge)
    return precision if precision in ("fp32", OWN) else f"{precision} autocast"


def recorded_math(precision: str | None, math: str | None) -> str | None:
    """A run's math mode: the one recorded, or for a run made before ``math`` was recorded
    what its precision then meant (autocast over fp32 weights)."""
    if math is not None or precision is None:
        return math
    return precision if precision in ("fp32", OWN) else f"{precision} autocast"


def judge_precision(judge) -> str:
    """``fp32``/``fp16``/``bf16`` from a built judge's autocast dtype or its own low-precision
    weights; ``own`` if it has neither attribute."""
    weights = getattr(judge, "weights_dtype", None)
    if weights is not None:
        return {"torch.float16": "fp16", "torch.bfloat16": "bf16"}.get(str(weights), str(weights))
    if not hasattr(judge, "amp_dtype"):
        return OWN
    dtype = judge.amp_dtype
    return "fp32" if dtype is None else {"torch.float16": "fp16",
                                         "torch.bfloat16": "bf16"}.get(str(dtype), str(dtype))


__all__ = ["DEFAULT_PROTOCOL", "FP16_WEIGHTS", "KNOBS", "KNOB_NAMES", "MEANINGS", "NORMALIZATIONS",
           "OBJECTNET_RULES", "OWN", "PRECISIONS", "PROTOCOLS", "ZERO_SHOT", "MiningProtocol",
           "ProtocolRule", "built_judge_protocol", "check_knobs", "judge_math",
           "judge_precision", "math_mode", "recorded_math", "resolve"]
