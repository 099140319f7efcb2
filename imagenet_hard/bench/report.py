"""The one shape every benchmark returns, :class:`BenchReport`, and the one printer.

A benchmark times a reference procedure and ours on the same data in one process. The report says
what was timed, the two throughputs (and any further variants of ours), their ratio against an
optional target, the settings, what else was measured on the way (``results``: agreement,
candidates, pixel differences) and free-form notes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import InvalidValueError


@dataclass(frozen=True)
class Timing:
    """One timed procedure: ``items`` units (crops, images) in ``seconds`` of wall time."""

    label: str
    items: int
    seconds: float

    def __post_init__(self):
        if self.items < 0 or not self.seconds >= 0 or not math.isfinite(self.seconds):
            raise InvalidValueError(f"timing {self.label!r}: items and seconds must be ≥ 0, got "
                                    f"{self.items} in {self.seconds} s")

    @property
    def rate(self) -> float:
        """Items per second (infinite for a zero-length timing)."""
        return self.items / self.seconds if self.seconds > 0 else math.inf


@dataclass(frozen=True)
class BenchReport:
    """A reference procedure against ours on the same data; ``ratio`` is ours ÷ reference."""

    name: str                     # the benchmark: zoom, mine, score, corrupt
    subject: str                  # what was timed, in a sentence
    unit: str                     # what ``Timing.items`` counts: crops, images
    reference: Timing
    ours: Timing
    variants: tuple[Timing, ...] = ()    # further ways of ours (early exit, the torch path)
    target: float | None = None          # the ratio the project aims at, when it has one
    config: Mapping[str, object] = field(default_factory=dict)
    results: Mapping[str, object] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def ratio(self) -> float:
        return self.ours.rate / self.reference.rate

    def variant_ratio(self, timing: Timing) -> float:
        return timing.rate / self.reference.rate

    def to_json(self) -> dict:
        def timing(t: Timing) -> dict:
            return {"label": t.label, "items": t.items, "seconds": t.seconds, "rate": t.rate}

        return {"name": self.name, "subject": self.subject, "unit": self.unit,
                "reference": timing(self.reference), "ours": timing(self.ours),
                "variants": [timing(t) for t in self.variants], "ratio": self.ratio,
                "target": self.target, "config": dict(self.config),
                "results": dict(self.results), "notes": list(self.notes)}


def _value(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_report(r: BenchReport) -> str:
    """The report as ``imhard bench`` prints it: a screenful at most."""
    width = max(len(t.label) for t in (r.reference, r.ours, *r.variants))
    unit = f"{r.unit}/s"

    def line(role: str, t: Timing, ratio: float | None = None) -> str:
        text = f"{role:<10} {t.label:<{width}}  {t.rate:10.2f} {unit}  ({t.seconds:.3f} s)"
        return text + (f"  {ratio:.2f}x the reference" if ratio is not None else "")

    lines = [f"bench {r.name}: {r.subject}"]
    if r.config:
        lines.append("config:    " + ", ".join(f"{k} {_value(v)}" for k, v in r.config.items()))
    lines.append(line("reference", r.reference))
    lines.append(line("ours", r.ours))
    lines += [line("also", t, r.variant_ratio(t)) for t in r.variants]
    target = "" if r.target is None else (f" (target ≥ {r.target:g}x: "
                                          f"{'met' if r.ratio >= r.target else 'NOT met'})")
    lines.append(f"ratio      {r.ratio:.3f}x ours / reference{target}")
    lines += [f"{k}: {_value(v)}" for k, v in r.results.items()]
    lines += list(r.notes)
    return "\n".join(lines)


def best_time(fn: Callable[[], object], repeat: int = 1,
              sync: Callable[[], None] | None = None) -> float:
    """The shortest wall time of ``repeat`` calls (``sync`` waits for a device after each)."""
    best = math.inf
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        best = min(best, time.perf_counter() - start)
    return best
