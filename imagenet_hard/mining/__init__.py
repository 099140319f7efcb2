"""Mining: find the images that no zoom crop lets a judge classify (DESIGN §6).

``mine(sources, judge)`` judges every image of built source tables on its 324 zoom crops, with
early exit (crops in rounds, settled images leave the batch) or ``exhaustive=True`` (every crop, a
324-bit correctness mask per image). Work is cut into resumable shards, split across torchrun
ranks. Modules: ``order`` (crop order and rounds), ``plan`` (sources, shards, ``run.json``),
``engine`` (the batched judging loop), ``distributed`` (torchrun), ``run`` (the whole run).
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
from .run import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_JUDGE,
    DEFAULT_SHARD_SIZE,
    SHARD_SCHEMA,
    MiningResult,
    mine,
    read_candidates,
    read_results,
)

__all__ = [
    "DEFAULT_BATCH_SIZE", "DEFAULT_JUDGE", "DEFAULT_SHARD_SIZE", "CropOrder", "MiningResult",
    "ORDER_VERSION", "ROUND_SIZES", "SHARD_SCHEMA", "crop_order", "default_run_name",
    "heuristic_order", "learned_order", "load_workload", "mine", "read_candidates",
    "read_results", "rounds",
]
