"""``mine``: a whole mining run — plan, shards (resumable, split over torchrun ranks), merge.

Layout of ``<home>/mining/<run>/``::

    run.json              settings pinned at start (judge, sources, mode, shard size, crop order)
    shards/shard-NNNNN.parquet   one per finished shard, written once, atomically (SHARD_SCHEMA)
    candidates.parquet    images no crop got right (records.CANDIDATE_SCHEMA)
    summary.json          counts, forward passes, throughput

A rerun with the same run name skips the shards that exist, so a killed job resumes and ends with
the same candidates; under torchrun rank ``r`` judges shards ``k`` with ``k % world == r``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from .. import home as homes
from ..errors import ImHardError, InvalidValueError, MissingFileError
from ..files import write_json_atomic
from ..records import CANDIDATE_SCHEMA, read_table, write_table
from ..registry import normalize_name
from . import distributed
from .plan import (
    Workload,
    check_run,
    check_run_name,
    default_run_name,
    load_workload,
    open_run,
    run_record,
    shard_path,
)

DEFAULT_JUDGE = "clip-vit-l-14"
DEFAULT_BATCH_SIZE = 256
CPU_BATCH_SIZE = 64
DEFAULT_SHARD_SIZE = 1000
META_SHARD = b"imagenet_hard.mining_shard"

#: One row per judged image. ``first_correct_crop`` is the earliest correct crop in the run's
#: crop order (the one that settled the image; null for candidates). ``best_crop``/``top5`` are
#: over the crops evaluated. ``mask`` (exhaustive runs only; null otherwise) holds 324 booleans in
#: transform-index order (``9*s + 3*i + j``): DuckDB reads it as ``BOOLEAN[]``
#: (``mask[idx + 1]``, ``list_sum(mask)``), pyarrow/numpy as a list column.
#: ``one_crop_correct`` (exhaustive runs only) is the verdict on the standard 1-crop (resize 256,
#: centre crop 224), judged besides the 324 and counted in ``n_forward``.
SHARD_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source", pa.string()),
    ("origin", pa.string()),
    ("label", pa.list_(pa.int64())),
    ("label_space", pa.string()),
    ("correct", pa.bool_()),
    ("first_correct_crop", pa.int16()),
    ("n_forward", pa.int16()),
    ("best_crop", pa.int16()),
    ("top5", pa.list_(pa.int64())),
    ("top5_prob", pa.list_(pa.float32())),
    ("n_correct", pa.int16()),
    ("mask", pa.list_(pa.bool_())),
    ("one_crop_correct", pa.bool_()),
])


@dataclass(frozen=True)
class MiningResult:
    """Where a run's outputs are, and its summary (``summary.json`` as a dict)."""

    run: str
    run_dir: Path
    candidates: Path
    summary_path: Path
    summary: dict = field(default_factory=dict)

    @property
    def shards_dir(self) -> Path:
        return self.run_dir / "shards"

    @property
    def n_candidates(self) -> int:
        return int(self.summary.get("candidates", 0))


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


@dataclass(frozen=True)
class _Run:
    name: str
    dir: Path
    work: Workload
    record: dict


def _prepare(sources, judge, home, run, exhaustive, shard_size, ranks, crop_order) -> _Run:
    """Read the sources and check the run's settings (rank 0 checks, every rank hears)."""
    home_dir = homes.data_home(home)
    work = load_workload(sources, home_dir)
    judge_name = judge_spec_name(judge)
    run = check_run_name(run or default_run_name(judge_name, list(work.sources), exhaustive))
    run_dir = homes.mining_dir(home_dir) / run
    record = run_record(judge_name, work, exhaustive, shard_size, crop_order)
    error = None
    if ranks.rank == 0:
        try:
            check_run(run_dir, record)
        except ImHardError as exc:
            error = str(exc)
    error = distributed.broadcast_error(ranks, error)
    if error:
        raise InvalidValueError(error)
    return _Run(run, run_dir, work, record)


def mine(sources: list[str] | str, judge=DEFAULT_JUDGE, home=None, run: str | None = None,
         exhaustive: bool = False, device=None, batch_size: int | None = None,
         shard_size: int = DEFAULT_SHARD_SIZE, workers: int | None = None, crops: str = "pil",
         progress: bool = False, crop_order=None) -> MiningResult:
    """Mine ``sources`` with ``judge`` (a spec string or a built judge) into ``<home>/mining/<run>``.

    ``batch_size`` defaults to 256 crops on CUDA and 64 on the CPU. Resumes a run of the same
    name; under torchrun each rank judges its shards and rank 0 merges. Returns the paths and the
    summary (only rank 0 writes them; every rank returns them). ``crop_order`` (a
    :class:`~imagenet_hard.mining.order.CropOrder`, default the heuristic) is pinned in ``run.json``.
    """
    t0 = time.perf_counter()
    sources = sources.split(",") if isinstance(sources, str) else list(sources)
    ranks, dev = distributed.setup(device)
    try:
        if batch_size is None:
            batch_size = DEFAULT_BATCH_SIZE if dev.type == "cuda" else CPU_BATCH_SIZE
        _check_sizes(batch_size, shard_size)
        r = _prepare(sources, judge, home, run, exhaustive, shard_size, ranks, crop_order)
        shards = r.work.shards(shard_size)
        todo = [k for k in range(len(shards))
                if ranks.mine(k) and not shard_path(r.dir, k).exists()]
        if todo and isinstance(judge, str):
            from ..judges import create_judge

            judge = create_judge(judge, dev)  # before run.json: a bad spec leaves no run behind
        if ranks.rank == 0:
            open_run(r.dir, r.record)
        counts = [0.0, 0.0]
        if todo:
            counts = _mine_shards(judge, dev, r.work, shards, todo, r.dir, exhaustive,
                                  batch_size, workers, crops, progress, ranks, crop_order)
        counts = distributed.sum_counts(ranks, counts, dev)
        distributed.barrier(ranks)
        summary = None
        if ranks.rank == 0:
            summary = merge_run(r.dir, r.record, judge, seconds=time.perf_counter() - t0,
                                computed_images=int(counts[0]), computed_crops=int(counts[1]),
                                world=ranks.world, device=str(dev), crops=crops,
                                batch_size=batch_size)
        distributed.barrier(ranks)
        if summary is None:
            summary = json.loads((r.dir / "summary.json").read_text())
        return MiningResult(r.name, r.dir, r.dir / "candidates.parquet", r.dir / "summary.json",
                            summary)
    finally:
        distributed.teardown(ranks)


def _mine_shards(judge, dev, work, shards, todo, run_dir, exhaustive, batch_size, workers, crops,
                 progress, ranks, crop_order) -> list[float]:
    """Judge this rank's unfinished shards, writing each once; (images, crops) judged."""
    from tqdm import tqdm

    from .engine import ShardMiner

    miner = ShardMiner(judge, work.spaces, work.home, dev, exhaustive=exhaustive,
                       batch_size=batch_size, workers=workers, crops=crops, crop_order=crop_order)
    images = 0
    desc = f"mining (rank {ranks.rank})" if ranks.distributed else "mining"
    bar = tqdm(total=sum(len(shards[k]) for k in todo), desc=desc, unit="img",
               disable=not progress, position=ranks.rank)
    try:
        for k in todo:
            t = time.perf_counter()
            before = miner.forward_passes
            rows = miner.mine_shard(shards[k])
            meta = {"shard": k, "rank": ranks.rank, "seconds": round(time.perf_counter() - t, 3),
                    "forward_passes": miner.forward_passes - before}
            write_table(rows, SHARD_SCHEMA, shard_path(run_dir, k),
                        {META_SHARD: json.dumps(meta).encode()})
            images += len(rows)
            bar.update(len(rows))
    finally:
        bar.close()
        miner.close()
    return [float(images), float(miner.forward_passes)]


def read_shards(run_dir: Path, n_shards: int) -> pa.Table:
    """All shard rows of a finished run, in id order."""
    missing = [k for k in range(n_shards) if not shard_path(run_dir, k).exists()]
    if missing:
        raise MissingFileError(
            f"run {run_dir.name!r} lacks {len(missing)} of {n_shards} shards (first: "
            f"{shard_path(run_dir, missing[0]).name}); rerun `imhard mine` with the same --run"
        )
    tables = [read_table(shard_path(run_dir, k), what="mining shard") for k in range(n_shards)]
    return pa.concat_tables([_with_new_columns(t).select(SHARD_SCHEMA.names) for t in tables])


def _with_new_columns(table: pa.Table) -> pa.Table:
    """Shards written before ``one_crop_correct`` existed read with it null."""
    if "one_crop_correct" not in table.column_names:
        table = table.append_column("one_crop_correct", pa.nulls(table.num_rows, pa.bool_()))
    return table


def merge_run(run_dir: Path, record: dict, judge, seconds: float, computed_images: int,
              computed_crops: int, world: int, device: str, crops: str,
              batch_size: int) -> dict:
    """Write ``candidates.parquet`` and ``summary.json`` from the shards; return the summary."""
    table = read_shards(run_dir, record["shards"])
    cols = table.to_pydict()
    cand = [
        {k: cols[k][r] for k in CANDIDATE_SCHEMA.names}
        for r in range(table.num_rows) if not cols["correct"][r]
    ]
    write_table(cand, CANDIDATE_SCHEMA, run_dir / "candidates.parquet")
    n = table.num_rows
    forward = sum(int(v) for v in cols["n_forward"])
    per_origin: dict[str, dict[str, int]] = {}
    img_by_origin = Counter(cols["origin"])
    cand_by_origin = Counter(c["origin"] for c in cand)
    for origin in sorted(img_by_origin):
        per_origin[origin] = {"images": img_by_origin[origin],
                              "candidates": cand_by_origin.get(origin, 0)}
    summary = {
        "judge": record["judge"],
        "judge_flops_per_image": _flops(judge),
        "sources": record["sources"],
        "mode": "exhaustive" if record["exhaustive"] else "early-exit",
        "crop_order": record["crop_order"],
        "crops_backend": crops,
        "images": n,
        "candidates": len(cand),
        "forward_passes": forward,
        "forward_passes_per_image": round(forward / n, 3) if n else 0.0,
        "seconds": round(seconds, 3),
        "computed_images": computed_images,
        "computed_forward_passes": computed_crops,
        "images_per_s": round(computed_images / seconds, 3) if seconds > 0 else None,
        "crops_per_s": round(computed_crops / seconds, 3) if seconds > 0 else None,
        "resumed_images": n - computed_images,
        "per_origin": per_origin,
        "shard_size": record["shard_size"],
        "shards": record["shards"],
        "batch_size": batch_size,
        "world_size": world,
        "device": device,
    }
    write_json_atomic(run_dir / "summary.json", summary)
    return summary


def _flops(judge) -> float | None:
    if isinstance(judge, str):
        return None
    value = getattr(judge, "flops_per_image", None)
    return float(value) if value else None


def read_candidates(run: str, home=None) -> pa.Table:
    """The candidates table of a finished run (what review and publish read)."""
    path = homes.mining_dir(home) / run / "candidates.parquet"
    if not path.exists():
        raise MissingFileError(f"run {run!r} has no candidates at {path}; run `imhard mine` first")
    return read_table(path, what="candidates table")


def read_results(run: str, home=None) -> pa.Table:
    """Every judged image of a finished run (SHARD_SCHEMA rows), e.g. exhaustive masks."""
    run_dir = homes.mining_dir(home) / run
    rec_path = run_dir / "run.json"
    if not rec_path.exists():
        raise MissingFileError(f"no mining run {run!r} at {run_dir}")
    return read_shards(run_dir, json.loads(rec_path.read_text())["shards"])


