"""Mining: find the images that no zoom crop lets a judge classify.

``mine(sources, judge)`` judges every image of built source tables on its 324 zoom crops, with
early exit (crops in rounds, settled images leave the batch) or ``exhaustive=True`` (every crop, a
324-bit correctness mask per image), under a mining protocol (``imagenet_hard.mining_protocol``:
normalisation, precision, ObjectNet rule; ``paper`` by default) that ``run.json`` records and a
resume must match. Work is cut into resumable shards, split across torchrun ranks. ``open_run(name)`` is how every other stage reads a run. Modules: ``order`` (crop order and
rounds), ``plan`` (sources, shards), ``runs`` (the run folder: ``MiningRun``, its records),
``engine`` (the batched judging loop), ``run`` (the whole run, on the sharded-job engine
:mod:`imagenet_hard.jobs`: resume, torchrun ranks).
Importing this package does not import torch; ``mine`` does.
"""

from .order import (
    ORDER_VERSION,
    ROUND_SIZES,
    CropOrder,
    crop_order,
    heuristic_order,
    learned_order,
    rounds,
)
from .plan import default_run_name, load_workload
from .run import DEFAULT_BATCH_SIZE, DEFAULT_JUDGE, DEFAULT_SHARD_SIZE, mine
from .runs import (
    SHARD_SCHEMA,
    MiningRun,
    OriginCounts,
    RunRecord,
    RunSummary,
    list_runs,
    open_run,
)

__all__ = [
    "DEFAULT_BATCH_SIZE", "DEFAULT_JUDGE", "DEFAULT_SHARD_SIZE", "CropOrder", "MiningRun",
    "ORDER_VERSION", "OriginCounts", "ROUND_SIZES", "RunRecord", "RunSummary", "SHARD_SCHEMA",
    "crop_order", "default_run_name", "heuristic_order", "learned_order", "list_runs",
    "load_workload", "mine", "open_run", "rounds",
]
