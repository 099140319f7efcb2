"""``imhard bench mine --judge a,b``: an ensemble's mining cost against its judges' single runs.

Each judge mines the images alone with early exit (``imhard mine --judge X``), then the ensemble
mines them (``imhard mine --judge a,b --rule R``, judges in the order it measures, cheapest
first). The main figure is forward passes (crops judged), which is exact and machine-independent;
seconds, each run's wall time end to end, stand beside it.

An image's early-exit cost for one judge does not depend on the other images (the engine's rounds
are per image), so the ensemble's cost under any judge order is a replay of the single runs: the
first judge pays its single cost on every image, each later one its single cost on the images the
rule has not settled yet. The replay of the order the ensemble chose is checked against the
forward passes the ensemble run counted. Every order judges a subset of the images with each
judge, so every order, the worst included, costs at most the sum of the singles in forward
passes; in seconds the ensemble also pays for building its judges together and for timing them
(:data:`~imagenet_hard.mining.ensemble.TIMING_CROPS` dummy crops, twice, per judge).
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidValueError
from ..mining.ensemble import TIMING_CROPS, check_rule, decide, parse_judges

#: Most judges whose every order is replayed (k! orders).
MAX_JUDGES = 6


@dataclass(frozen=True)
class Cost:
    """One way of mining the images: forward passes (exact) and seconds (wall time, or an
    estimate for a replayed order)."""

    forward_passes: int
    seconds: float
    candidates: int | None = None


@dataclass(frozen=True)
class EnsembleBench:
    rule: str
    images: int
    config: Mapping[str, object]
    singles: Mapping[str, Cost]           # judge → its single early-exit run
    ensemble: Cost                        # the ensemble run, judges in ``chosen``
    chosen: tuple[str, ...]
    orders: Mapping[tuple[str, ...], Cost]   # every order, replayed (seconds estimated)
    replay_matches: bool                  # replay of ``chosen`` == the ensemble run's counts
    seconds_per_crop: Mapping[str, float]  # measured by the ensemble to choose its order

    @property
    def sum_of_singles(self) -> Cost:
        return Cost(sum(c.forward_passes for c in self.singles.values()),
                    sum(c.seconds for c in self.singles.values()))

    @property
    def best(self) -> tuple[str, ...]:
        """The cheapest order in forward passes (the chosen one among equals)."""
        return min(self.orders, key=lambda o: (self.orders[o].forward_passes, o != self.chosen))

    @property
    def worst(self) -> tuple[str, ...]:
        """The dearest order in forward passes (another than the chosen one among equals)."""
        return max(self.orders, key=lambda o: (self.orders[o].forward_passes, o != self.chosen))

    @property
    def timing_seconds(self) -> float:
        """About what the ensemble spent timing its judges for the order (two passes of
        :data:`TIMING_CROPS` crops each, at the time per crop it measured)."""
        return 2 * TIMING_CROPS * sum(self.seconds_per_crop.values())

    def factor(self, order: tuple[str, ...]) -> float:
        """The worst order's forward passes ÷ ``order``'s."""
        passes = self.orders[order].forward_passes
        return self.orders[self.worst].forward_passes / passes if passes else math.inf

    def lines(self) -> list[str]:
        total = self.sum_of_singles
        chosen = f"ensemble ({' → '.join(self.chosen)})"
        width = max(len(chosen), *(len(j) + 7 for j in self.singles), 30)

        def row(label: str, c: Cost, tail: str = "") -> str:
            cand = "" if c.candidates is None else f"{c.candidates:>12}"
            return f"{label:<{width}}{c.forward_passes:>15,}{c.seconds:>10.2f}{cand}{tail}"

        ens, worst = self.ensemble, self.orders[self.worst]
        fits = ens.forward_passes <= total.forward_passes
        out = [f"bench mine: an ensemble of {len(self.singles)} judges under rule {self.rule} "
               f"against each judge alone (early exit), same {self.images} images",
               "config:    " + ", ".join(f"{k} {v}" for k, v in self.config.items()),
               f"{'':<{width}}{'forward passes':>15}{'seconds':>10}{'candidates':>12}"]
        out += [row(f"alone  {j}", c) for j, c in self.singles.items()]
        out.append(row("sum of singles", total))
        out.append(row(chosen, ens))
        out.append(f"ensemble ≤ sum of singles: {'yes' if fits else 'NO'} in forward passes "
                   f"({ens.forward_passes:,} {'≤' if fits else '>'} {total.forward_passes:,}, "
                   f"{_ratio(ens.forward_passes, total.forward_passes)} of the sum); seconds "
                   f"{ens.seconds:.2f} against {total.seconds:.2f} "
                   f"({'≤' if ens.seconds <= total.seconds else '>'}; besides mining, the "
                   f"ensemble builds its judges and times each on 2 × {TIMING_CROPS} dummy crops, "
                   f"≈ {self.timing_seconds:.2f} s)")
        out.append(f"every judge order ({len(self.orders)}; forward passes replayed from the "
                   "single runs' per-image counts, exact; seconds estimated as each judge's "
                   "passes × its measured time per crop):")
        for order, c in sorted(self.orders.items(), key=lambda kv: (kv[1].forward_passes, kv[0])):
            marks = [m for m, o in (("chosen", self.chosen), ("best", self.best),
                                    ("worst", self.worst)) if o == order]
            out.append(row(f"  {' → '.join(order)}", c, f"  {', '.join(marks)}" if marks
                           else ""))
        best = self.factor(self.chosen) == self.factor(self.best)
        out.append(f"judge order: the chosen order beats the worst by "
                   f"{self.factor(self.chosen):.2f}x in forward passes (worst "
                   f"{worst.forward_passes:,} ÷ chosen {self.orders[self.chosen].forward_passes:,}"
                   f"), the best order by {self.factor(self.best):.2f}x; the chosen order is "
                   f"{'a best one' if best else 'not the best'} (the ensemble orders judges by "
                   "time per crop, not by how many images each settles)")
        slowest = max(c.seconds for c in self.orders.values())
        mine = self.orders[self.chosen].seconds
        out.append(f"judge order in estimated seconds (a pass of each judge at its own cost): "
                   f"the chosen order beats the slowest by "
                   f"{slowest / mine if mine else math.inf:.2f}x ({slowest:.2f} ÷ {mine:.2f} s)")
        wfits = worst.forward_passes <= total.forward_passes
        out.append(f"worst order ≤ sum of singles: {'yes' if wfits else 'NO'} "
                   f"({worst.forward_passes:,} {'≤' if wfits else '>'} {total.forward_passes:,}"
                   "): every order judges a subset of the images with each judge")
        out.append(f"replay of the chosen order = the ensemble run's forward passes: "
                   f"{'yes' if self.replay_matches else 'NO'}")
        return out

    def summary(self) -> str:
        return "\n".join(self.lines())


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "-"


def replay(order: Sequence[str], passes: Mapping[str, Mapping[str, int]],
           correct: Mapping[str, Mapping[str, bool]], rule: str) -> dict[str, int]:
    """Forward passes each judge spends when the ensemble runs them in ``order``: a judge pays its
    single-run count ``passes[judge][image]`` on every image the rule has not settled before it
    (``correct[judge][image]``: its single-run verdict)."""
    images = list(passes[order[0]])
    spent = dict.fromkeys(order, 0)
    verdicts: dict[str, list[bool | None]] = {i: [None] * len(order) for i in images}
    for slot, judge in enumerate(order):
        for image in images:
            if decide(verdicts[image], rule) is None:
                spent[judge] += passes[judge][image]
                verdicts[image][slot] = correct[judge][image]
    return spent


def bench_ensemble(judges, rule: str = "all", images: int = 4, source: str | None = None,
                   home=None, device=None, batch_size: int | None = None, workers: int | None = None,
                   objectnet_labels: str | None = None, echo=print) -> EnsembleBench:
    """Mine the same ``images`` (default: the sample photos) with each judge alone (early exit)
    and with the ensemble ``judges`` under ``rule``; replay every judge order."""
    from ..jobs import resolve_device
    from ..judges import judge_kind
    from ..mining import mine
    from ..mining.ensemble import mine_ensemble
    from ..mining.run import build_judge, default_batch_size
    from ..mining_protocol import resolve
    from .mine import BENCH_SOURCE, _bench_rows, _warm_up

    members, rule = parse_judges(judges), check_rule(rule)
    if len(members) > MAX_JUDGES:
        raise InvalidValueError(f"bench mine replays every order of at most {MAX_JUDGES} judges, "
                                f"got {len(members)}")
    dev = resolve_device(device)
    batch_size = batch_size or default_batch_size(dev)
    protos = [resolve(judge_kind(j.spec), dev.type, precision=j.precision,
                      objectnet_labels=objectnet_labels, judge=j.spec) for j in members]
    names = [f"{j.spec}@{p.precision}" for j, p in zip(members, protos, strict=True)]
    if len(set(names)) != len(names):
        raise InvalidValueError(f"two judges are the same model at the same precision: "
                                f"{', '.join(names)}")
    with tempfile.TemporaryDirectory(prefix="imhard-bench-ensemble-") as tmp:
        rows, _, work = _bench_rows(source, images, home, Path(tmp))
        # Untimed: the first build and forward pass pay for imports and lazy set-up.
        for j, p in zip(members, protos, strict=True):
            _warm_up(build_judge(j.spec, dev, p), work / rows[0].path)
        singles, passes, correct = {}, {}, {}
        for k, (j, p) in enumerate(zip(members, protos, strict=True)):
            echo(f"mining alone with {names[k]} (early exit) …")
            t = time.perf_counter()
            run = mine([BENCH_SOURCE], j.spec, home=work, device=dev, batch_size=batch_size,
                       workers=workers, run=f"bench-single-{k}", precision=j.precision,
                       objectnet_labels=p.objectnet_labels)
            seconds = time.perf_counter() - t
            table = run.results().select(["id", "correct", "n_forward"]).to_pylist()
            passes[names[k]] = {r["id"]: int(r["n_forward"]) for r in table}
            correct[names[k]] = {r["id"]: bool(r["correct"]) for r in table}
            singles[names[k]] = Cost(sum(passes[names[k]].values()), seconds,
                                     run.summary.candidates)
        echo(f"mining with the ensemble under rule {rule} …")
        t = time.perf_counter()
        res = mine_ensemble([BENCH_SOURCE], [j.name for j in members], rule, home=work,
                            run="bench-ensemble", device=dev, batch_size=batch_size,
                            workers=workers, objectnet_labels=objectnet_labels)
        seconds = time.perf_counter() - t
        ensemble = Cost(sum(res.forward_passes.values()), seconds, res.run.summary.candidates)
    chosen = tuple(res.order)
    per_crop = res.seconds_per_crop
    orders = {}
    for order in itertools.permutations(names):
        spent = replay(order, passes, correct, rule)
        orders[order] = Cost(sum(spent.values()),
                             sum(n * per_crop.get(j, 0.0) for j, n in spent.items()))
    return EnsembleBench(
        rule=rule, images=len(rows),
        config={"judges": ", ".join(names), "rule": rule, "device": str(dev),
                "images": len(rows), "batch size": batch_size,
                "time per crop (ms, measured for the order)": ", ".join(
                    f"{j} {1000 * per_crop[j]:.2f}" for j in names if j in per_crop)},
        singles=singles, ensemble=ensemble, chosen=chosen, orders=orders,
        replay_matches=replay(chosen, passes, correct, rule) == res.forward_passes,
        seconds_per_crop=dict(per_crop))
