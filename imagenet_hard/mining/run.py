"""``mine``: a whole mining run — plan, shards (resumable, split over torchrun ranks), merge.

The run's folder and files are :class:`~imagenet_hard.mining.runs.MiningRun`'s business; the
shards, resume and torchrun ranks are :mod:`imagenet_hard.jobs`'. A rerun with the same run name
skips the shards that exist, so a killed job resumes and ends with the same candidates; under
torchrun rank ``r`` judges shards ``k`` with ``k % world == r``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc

from .. import devices, jobs
from .. import home as homes
from ..errors import InvalidValueError, MissingFileError
from ..files import sha256_file
from ..judges import DEFAULT_JUDGE, judge_kind
from ..mining_protocol import (
    FP16_WEIGHTS,
    OWN,
    MiningProtocol,
    built_judge_protocol,
    check_knobs,
    judge_math,
    math_mode,
    resolve,
)
from ..records import CANDIDATE_SCHEMA
from ..registry import normalize_name
from .plan import Workload, check_built, check_limit, default_run_name, load_workload, run_record
from .runs import MiningRun, OriginCounts, RunSummary, check_run_name, open_run, run_folder

DEFAULT_BATCH_SIZE = 256
CPU_BATCH_SIZE = 64
DEFAULT_SHARD_SIZE = 1000


def default_batch_size(dev) -> int:
    """Crops a batch when none is asked: 256 on CUDA, 64 on the CPU (the one place; ``mine``,
    ensembles and ``bench mine`` use it)."""
    return DEFAULT_BATCH_SIZE if dev.type == "cuda" else CPU_BATCH_SIZE


def _check_sizes(batch_size: int, shard_size: int) -> None:
    for name, value in (("--batch-size", batch_size), ("--shard-size", shard_size)):
        if int(value) < 1:
            raise InvalidValueError(f"{name} must be a positive integer, got {value}")


def judge_spec_name(judge) -> str:
    """The name a run records: a registered name normalised (``efficientnet_lite0`` →
    ``efficientnet-lite0``), a ``family:name`` spec as written, a built judge's ``name``."""
    if not isinstance(judge, str):
        return str(judge.name)
    return judge.strip() if ":" in judge else normalize_name(judge)


def check_weights(weights, judge) -> Path | None:
    """``--weights``: an existing file, for a judge given as a spec (a built judge has its own)."""
    if weights is None:
        return None
    if not isinstance(judge, str):
        raise InvalidValueError("--weights applies to a judge given by name or spec; this judge "
                                f"{getattr(judge, 'name', judge)!r} is already built")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise MissingFileError(f"--weights {weights}: no such file; pass the path of a local "
                               "checkpoint of the judge's weights")
    return path.absolute()


def check_protocol(judge, protocol=None, normalization=None, precision=None,
                   objectnet_labels=None) -> None:
    """Check the protocol knobs against the judge, without torch (the CLI calls this while
    parsing; ``mine`` before anything else)."""
    if isinstance(judge, str):
        kind = judge_kind(judge)
        check_knobs(protocol, normalization, precision, objectnet_labels, kind,
                    judge_spec_name(judge))
    else:  # a built judge: whether it can take the normalisation asked is checked once built
        check_knobs(protocol, normalization, precision, objectnet_labels)


def resolve_protocol(judge, device_type: str, protocol=None, normalization=None,
                     precision=None, objectnet_labels=None) -> MiningProtocol:
    """The protocol a run of ``judge`` (a spec or a built judge) follows on this device."""
    if not isinstance(judge, str):
        return built_judge_protocol(judge, device_type, protocol, normalization, precision,
                                    objectnet_labels)
    return resolve(judge_kind(judge), device_type, protocol, normalization, precision,
                   objectnet_labels, judge=judge_spec_name(judge))


def _prepare(sources, judge, home, run, exhaustive, shard_size, ranks, crop_order,
             proto: MiningProtocol, weights: Path | None,
             compile: bool = False, limit: int | None = None) -> tuple[MiningRun, Workload]:
    """Read the sources and check the run's settings (rank 0 checks, every rank hears)."""
    home_dir = homes.data_home(home)
    work = load_workload(sources, home_dir, proto.objectnet_labels, limit)
    judge_name = judge_spec_name(judge)
    name = run or default_run_name(judge_name, list(work.sources), exhaustive)
    math = math_mode(judge_kind(judge), proto) if isinstance(judge, str) else judge_math(judge)
    record = run_record(judge_name, work, exhaustive, shard_size, crop_order, proto, math=math,
                        weights=str(weights) if weights else None,
                        weights_sha256=sha256_file(weights) if weights else None,
                        compile=compile)
    handle = MiningRun(run_folder(name, home_dir), record)
    jobs.check_on_rank_zero(ranks, handle.check_resumable, InvalidValueError)
    return handle, work


def mine(sources: list[str] | str, judge=DEFAULT_JUDGE, home=None, run: str | None = None,
         exhaustive: bool = False, device=None, batch_size: int | None = None,
         shard_size: int = DEFAULT_SHARD_SIZE, workers: int | None = None, crops: str = "pil",
         progress: bool = False, crop_order=None, protocol: str | None = None,
         normalization: str | None = None, precision: str | None = None,
         objectnet_labels: str | None = None, weights=None, compile: bool = False,
         limit: int | None = None) -> MiningRun:
    """Mine ``sources`` with ``judge`` (a spec string or a built judge) into ``<home>/mining/<run>``.

    ``protocol`` (default ``paper``) sets the knobs that change verdicts; ``normalization``,
    ``precision`` and ``objectnet_labels`` override one each (:mod:`imagenet_hard.mining_protocol`). A
    built judge keeps its own normalisation and precision. ``weights`` is a local checkpoint for
    a judge spec. ``batch_size`` defaults to 256 crops on CUDA and 64 on the CPU. Resumes a run
    of the same name (with the same knobs); under torchrun each rank judges its shards and rank
    0 merges. Returns the finished run; under torchrun only rank 0 waits for the others and
    writes the outputs, and another rank returns its unfinished handle as soon as no shard is
    left to take (:func:`~imagenet_hard.jobs.finish`: no barrier). ``crop_order`` (a
    :class:`~imagenet_hard.mining.order.CropOrder`, default the heuristic) is pinned in
    ``run.json``. ``compile`` runs the judge's model through ``torch.compile`` (recorded in
    ``run.json`` and pinned); a built judge is compiled in place. ``limit`` mines only the
    first N images by id (pinned through the run's image count and ids).
    """
    t0 = time.perf_counter()
    sources = sources.split(",") if isinstance(sources, str) else list(sources)
    _check_sizes(1 if batch_size is None else batch_size, shard_size)
    if limit is not None:
        check_limit(limit)
    check_protocol(judge, protocol, normalization, precision, objectnet_labels)
    weights = check_weights(weights, judge)
    if run is not None:
        check_run_name(run)
    check_built(sources, home)  # before torch starts: a typo answers at once
    ranks, dev = jobs.setup(device)
    try:
        if batch_size is None:
            batch_size = default_batch_size(dev)
        proto = resolve_protocol(judge, dev.type, protocol, normalization, precision,
                                 objectnet_labels)
        handle, work = _prepare(sources, judge, home, run, exhaustive, shard_size, ranks,
                                crop_order, proto, weights, compile, limit)
        shards = jobs.split(work.images, shard_size)
        # Every rank sees the same list and takes shards from it as it frees up (jobs.handout).
        todo = jobs.shared_missing(map(handle.shard_path, range(len(shards))), ranks)
        if todo and isinstance(judge, str):
            judge = build_judge(judge, dev, proto, weights)  # a bad spec leaves no run behind
        if todo and compile:
            compile_judge(judge)
        if ranks.rank == 0:
            handle.start()
        counts = [0.0, 0.0]
        if todo:
            counts = _mine_shards(judge, dev, work, shards, todo, handle, exhaustive,
                                  batch_size, workers, crops, progress, ranks, crop_order)
        merged = jobs.finish(ranks, [int(c) for c in counts], lambda total: merge_run(
            handle, _flops(judge), seconds=time.perf_counter() - t0,
            computed_images=total[0], computed_crops=total[1], world=ranks.world,
            device=str(dev), crops=crops, batch_size=batch_size, protocol=proto))
        return open_run(handle.dir) if merged is not None else handle
    finally:
        jobs.teardown(ranks)


def compile_judge(judge) -> None:
    """``--compile``: the judge's model through ``torch.compile`` (once; a judge that is not a
    :class:`~imagenet_hard.judges.Judge` cannot be)."""
    if getattr(judge, "compiled", False):
        return
    if not callable(getattr(judge, "compile", None)):
        raise InvalidValueError(f"judge {getattr(judge, 'name', judge)!r} cannot be compiled "
                                "(it is not an imagenet_hard Judge); mine it without --compile")
    judge.compile()


def build_judge(spec: str, dev, proto: MiningProtocol, weights: Path | None = None):
    """The judge ``spec`` under ``proto``: its precision always (as clip.load's fp16 weights
    where :func:`~imagenet_hard.mining_protocol.math_mode` says so), its normalisation where
    the judge has a choice (a classifier and a registered judge normalise their own way)."""
    from ..judges import create_judge

    kw = {"precision": proto.precision}
    if math_mode(judge_kind(spec), proto) == FP16_WEIGHTS:
        kw["clip_load_fp16"] = True
    if proto.normalization != OWN:
        kw["normalization"] = proto.normalization
    if weights is not None:
        kw["weights"] = str(weights)
    return create_judge(spec, dev, **kw)


def fit_loader_memory(dev, workers: int | None) -> None:
    """Before the engine's own check (single judge or ensemble): its one-crop-chunk-at-a-time
    loader can hand tensors over through pipes where /dev/shm is too small (one line on stderr;
    in each shard's meta)."""
    from . import engine

    devices.fit_shared_memory(engine.default_workers(dev) if workers is None else int(workers),
                              engine.ITEM_BYTES, engine.PREFETCH)


def _mine_shards(judge, dev, work, shards, todo, handle: MiningRun, exhaustive, batch_size,
                 workers, crops, progress, ranks, crop_order) -> list[float]:
    """Judge this rank's unfinished shards, writing each once; (images, crops) judged."""
    from . import engine

    fit_loader_memory(dev, workers)
    miner = engine.ShardMiner(judge, work.spaces, work.home, dev, exhaustive=exhaustive,
                              batch_size=batch_size, workers=workers, crops=crops,
                              crop_order=crop_order)

    def one(k: int) -> int:
        t = time.perf_counter()
        before, rejudged = miner.forward_passes, miner.rejudged
        rows = miner.mine_shard(shards[k])
        meta = {"shard": k, "rank": ranks.rank, "seconds": round(time.perf_counter() - t, 3),
                "forward_passes": miner.forward_passes - before,
                "near_ties_rejudged_fp32": miner.rejudged - rejudged, "math": miner.math,
                "loader_tensors": devices.tensor_transport()}
        handle.write_shard(k, rows, meta)
        return len(rows)

    images = []
    try:
        jobs.run(jobs.handout(todo, ranks), one, lambda _k, n: images.append(n),
                 size=lambda k: len(shards[k]),
                 desc="mining", ranks=ranks, progress=progress)
    finally:
        miner.close()
    return [float(sum(images)), float(miner.forward_passes)]


def merge_run(run: MiningRun, flops: float | None, seconds: float, computed_images: int,
              computed_crops: int, world: int, device: str, crops: str,
              batch_size: int, protocol: MiningProtocol | None = None) -> MiningRun:
    """Write the candidates and the summary from the shards; the finished run."""
    table = run.results()
    cols = table.select(["correct", "origin", "n_forward"]).to_pydict()
    cand = table.filter(pc.invert(table.column("correct"))).select(CANDIDATE_SCHEMA.names)
    n, rec = table.num_rows, run.record
    forward = sum(int(v) for v in cols["n_forward"])
    images = Counter(cols["origin"])
    found = Counter(cand.column("origin").to_pylist())
    summary = RunSummary(
        judge=rec.judge, judge_flops_per_image=flops, sources=rec.sources,
        mode="exhaustive" if rec.exhaustive else "early-exit", crop_order=rec.crop_order,
        crops_backend=crops, images=n, candidates=cand.num_rows, forward_passes=forward,
        forward_passes_per_image=round(forward / n, 3) if n else 0.0,
        seconds=round(seconds, 3), computed_images=computed_images,
        computed_forward_passes=computed_crops,
        images_per_s=round(computed_images / seconds, 3) if seconds > 0 else None,
        crops_per_s=round(computed_crops / seconds, 3) if seconds > 0 else None,
        resumed_images=n - computed_images,
        per_origin={o: OriginCounts(images[o], found.get(o, 0)) for o in sorted(images)},
        shard_size=rec.shard_size, shards=rec.shards, batch_size=batch_size, world_size=world,
        device=device, protocol=protocol or rec.protocol_record(),
    )
    return run.finish(cand.to_pylist(), summary)


def _flops(judge) -> float | None:
    if isinstance(judge, str):
        return None
    value = getattr(judge, "flops_per_image", None)
    return float(value) if value else None
