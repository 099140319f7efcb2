"""Ensemble mining: several judges, one rule, on top of the single-judge engine.

``mine_ensemble(sources, ["a", "b@bf16"], rule="all")`` runs the judges one after another,
cheapest first (each one's time per crop measured on a dummy batch), each on the images the rule
has not settled yet, with the engine's own early exit inside every image; then combines the
verdicts. Under ``all`` an image is a candidate when no judge gets any of its crops right (a judge
that is right settles it: the later judges skip it); under ``any`` when at least one judge gets
none right (a failing judge settles it); under ``majority`` when more than half fail (settled as
soon as either side has its majority). A judge's verdict on an image does not depend on which
other images share its batches, so skipping settled images changes the cost, never the
candidates: ``exhaustive=True`` runs every judge on every crop of every image, the reference.

A judge is a spec, optionally ``@PRECISION`` (``efficientnet-lite0@bf16``: the same weights at
another precision count as another judge). The run folder is an ordinary mining run (review,
publish and the analyses read it as any other): its shards hold the combined verdict per image
(``correct`` false for candidates; the crop, top-5 and forward passes are the settling judge's,
the forward passes summed over judges), ``run.json`` records the judges in the order they ran,
their precisions and the rule, and ``judges.parquet`` every judge's verdict and first correct
crop per image (null where the judge was not needed). Ensemble runs run in one process (no
torchrun) and restart when interrupted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .. import home as homes
from .. import jobs
from ..errors import InvalidValueError
from ..judges import check_judge, judge_kind
from ..mining_protocol import judge_math, resolve
from ..models.preprocess import PRECISIONS
from .plan import check_built, check_limit, default_run_name, load_workload, run_record
from .runs import RULES, MiningRun, check_run_name, open_run, run_folder

#: Crops of the dummy batch each judge is timed on (after one warm-up pass).
TIMING_CROPS = 16


@dataclass(frozen=True)
class EnsembleJudge:
    spec: str
    precision: str | None   # None: the protocol's default for this judge and device

    @property
    def name(self) -> str:
        return f"{self.spec}@{self.precision}" if self.precision else self.spec


def parse_judges(judges) -> list[EnsembleJudge]:
    """``a,b@bf16,...`` (or a list) as judges; each spec checked, none twice (no torch)."""
    items = [j.strip() for j in (judges.split(",") if isinstance(judges, str) else judges)]
    out = []
    for item in filter(None, items):
        spec, _, precision = item.rpartition("@") if "@" in item else (item, "", "")
        if "@" in item and precision not in PRECISIONS:
            raise InvalidValueError(f"judge {item!r}: the precision after @ must be one of "
                                    f"{', '.join(PRECISIONS)}")
        out.append(EnsembleJudge(check_judge(spec), precision or None))
    if len(out) < 2:
        raise InvalidValueError("an ensemble needs at least two judges (--judge a,b)")
    names = [j.name for j in out]
    if len(set(names)) != len(names):
        raise InvalidValueError(f"a judge is listed twice: {', '.join(names)}")
    return out


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise InvalidValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    return rule


def needed(rule: str, k: int) -> int:
    """Failing judges that make an image a candidate under ``rule`` among ``k`` judges."""
    return {"all": k, "any": 1, "majority": k // 2 + 1}[check_rule(rule)]


def decide(verdicts: Sequence[bool | None], rule: str) -> bool | None:
    """Candidate (True), not (False), or undecided (None) from the verdicts so far (None: that
    judge has not judged the image)."""
    k = len(verdicts)
    fails = sum(v is False for v in verdicts)
    pending = sum(v is None for v in verdicts)
    need = needed(rule, k)
    if fails >= need:
        return True
    if fails + pending < need:
        return False
    return None


def seconds_per_crop(judge, dev) -> float:
    """Wall time of one crop in a batch of :data:`TIMING_CROPS` (after a warm-up pass)."""
    import torch

    x = torch.randint(0, 256, (TIMING_CROPS, 3, 224, 224), dtype=torch.uint8)
    judge(x)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t = time.perf_counter()
    judge(x)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return (time.perf_counter() - t) / TIMING_CROPS


@dataclass
class EnsembleRun:
    run: MiningRun
    order: list[str]                 # judges as they ran
    seconds_per_crop: dict[str, float]
    judged: dict[str, int]           # images each judge judged
    forward_passes: dict[str, int]   # crops each judge evaluated


def mine_ensemble(sources, judges, rule: str = "all", home=None, run: str | None = None,
                  exhaustive: bool = False, device=None, batch_size: int | None = None,
                  shard_size: int = 1000, workers: int | None = None, crops: str = "pil",
                  objectnet_labels: str | None = None, order: str = "measured",
                  progress=None, limit: int | None = None) -> EnsembleRun:
    """Mine ``sources`` with several ``judges`` combined by ``rule`` (see the module docstring).
    ``order``: ``measured`` (cheapest first) or ``given`` (as listed); ``limit``: the first N
    images by id, as :func:`~imagenet_hard.mining.run.mine` takes it."""
    from .engine import ShardMiner
    from .run import build_judge, default_batch_size, fit_loader_memory, merge_run

    t0 = time.perf_counter()
    sources = sources.split(",") if isinstance(sources, str) else list(sources)
    members, rule = parse_judges(judges), check_rule(rule)
    if order not in ("measured", "given"):
        raise InvalidValueError(f"order must be measured or given, got {order!r}")
    if run is not None:
        check_run_name(run)
    if limit is not None:
        check_limit(limit)
    check_built(sources, home)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InvalidValueError("ensemble mining runs in one process; start it without torchrun")
    _, dev = jobs.setup(device)
    batch_size = batch_size or default_batch_size(dev)
    protos = [resolve(judge_kind(j.spec), dev.type, precision=j.precision,
                      objectnet_labels=objectnet_labels, judge=j.spec) for j in members]
    built = [build_judge(j.spec, dev, p) for j, p in zip(members, protos, strict=True)]
    names = [f"{j.spec}@{p.precision}" for j, p in zip(members, protos, strict=True)]
    if len(set(names)) != len(names):
        raise InvalidValueError(f"two judges are the same model at the same precision: "
                                f"{', '.join(names)}")
    cost = {n: seconds_per_crop(b, dev) for n, b in zip(names, built, strict=True)}
    home_dir = homes.data_home(home)
    work = load_workload(sources, home_dir, protos[0].objectnet_labels, limit)
    name = run or default_run_name(f"ensemble-{rule}", list(work.sources), exhaustive)
    ranks = _order(names, cost, order, run_folder(name, home_dir))
    joined = ",".join(names[k] for k in ranks)
    record = run_record(joined, work, exhaustive, shard_size, None, protos[ranks[0]],
                        math=judge_math(built[ranks[0]]))
    record = type(record)(**{**vars(record), "judges": tuple(names[k] for k in ranks),
                             "precisions": tuple(protos[k].precision for k in ranks),
                             "rule": rule})
    handle = MiningRun(run_folder(name, home_dir), record)
    if handle.check_resumable() and handle.finished:
        return _finished(handle)
    handle.start()
    images = list(work.images)
    verdicts: list[list[bool | None]] = [[None] * len(members) for _ in images]
    rows: list[list[dict | None]] = [[None] * len(members) for _ in images]
    judged, forward = {}, {}
    fit_loader_memory(dev, workers)   # as `mine` does: pipes where /dev/shm is too small
    for slot, k in enumerate(ranks):
        todo = [i for i in range(len(images))
                if exhaustive or decide(verdicts[i], rule) is None]
        if progress:
            progress(f"judge {slot + 1}/{len(ranks)}: {names[k]} on {len(todo)} images")
        miner = ShardMiner(built[k], work.spaces, work.home, dev, exhaustive=exhaustive,
                           batch_size=batch_size, workers=workers, crops=crops)
        try:
            out = miner.mine_shard([images[i] for i in todo]) if todo else []
        finally:
            miner.close()
        for i, row in zip(todo, out, strict=True):
            verdicts[i][slot] = bool(row["correct"])
            rows[i][slot] = row
        judged[names[k]], forward[names[k]] = len(todo), miner.forward_passes
    combined = [_combined(img, rows[i], verdicts[i], rule) for i, img in enumerate(images)]
    handle.write_judge_verdicts([
        {"id": img.id, "judge": names[k], "precision": protos[k].precision, "order": slot,
         **({key: rows[i][slot][key] for key in ("correct", "first_correct_crop", "n_forward",
                                                  "best_crop", "top5", "top5_prob")}
            if rows[i][slot] else {"correct": None, "n_forward": 0})}
        for i, img in enumerate(images) for slot, k in enumerate(ranks)])
    shards = jobs.split(list(range(len(images))), shard_size)
    for s, part in enumerate(shards):
        handle.write_shard(s, [combined[i] for i in part], {
            "shard": s, "rank": 0, "seconds": 0.0,
            "forward_passes": sum(combined[i]["n_forward"] for i in part)})
    done = merge_run(handle, None, seconds=time.perf_counter() - t0,
                     computed_images=len(images), computed_crops=sum(forward.values()), world=1,
                     device=str(dev), crops=crops, batch_size=batch_size, protocol=protos[ranks[0]])
    return EnsembleRun(open_run(done.dir), [names[k] for k in ranks], cost, judged, forward)


def _order(names: list[str], cost: dict[str, float], order: str, folder) -> list[int]:
    """Judge positions in running order: cheapest first (``measured``) or as given; a run that
    exists with the same judges keeps its recorded order (timings vary from run to run)."""
    from ..errors import ImHardError

    try:
        prior = list(open_run(folder).record.judges)
    except ImHardError:
        prior = []
    if sorted(prior) == sorted(names):
        return [names.index(n) for n in prior]
    ranks = list(range(len(names)))
    if order == "measured":
        ranks.sort(key=lambda k: cost[names[k]])
    return ranks


def _combined(img, rows: list[dict | None], verdicts: list[bool | None], rule: str) -> dict:
    """The image's row under the rule: the settling judge's crop and top-5 (the first judge,
    in order, whose verdict agrees with the outcome), forward passes summed over judges."""
    candidate = decide(verdicts, rule)
    if candidate is None:  # every judge ran: the rule decides on complete verdicts
        raise InvalidValueError(f"image {img.id} left undecided under rule {rule!r}")
    base = next(r for r, v in zip(rows, verdicts, strict=True)
                if r is not None and v is (not candidate))
    return {**base, "correct": not candidate,
            "first_correct_crop": None if candidate else base["first_correct_crop"],
            "n_forward": sum(r["n_forward"] for r in rows if r is not None),
            "n_correct": None, "mask": None, "one_crop_correct": None}


def _finished(handle: MiningRun) -> EnsembleRun:
    import pyarrow.compute as pc

    v = handle.judge_verdicts()
    order = list(handle.record.judges)
    judged = {j: int(pc.sum(pc.and_(pc.equal(v.column("judge"), j),
                                    pc.is_valid(v.column("correct")))).as_py() or 0)
              for j in order}
    forward = {j: int(pc.sum(pc.if_else(pc.equal(v.column("judge"), j), v.column("n_forward"),
                                        0)).as_py() or 0) for j in order}
    return EnsembleRun(handle, order, {}, judged, forward)
