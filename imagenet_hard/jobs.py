"""The sharded-job engine: a list of items → shards → resumable workers → one merged output.

Mining (``mining.run``) and the ImageNet-C build (``corruptions.build``) supply their per-shard
work and their merge; this module does the rest. Items in a fixed order are cut in shards
(:func:`split`); each shard's file is written once, atomically, so a rerun runs only the missing
ones (:func:`missing`). Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) each rank
takes the next missing shard when it is free (:func:`handout`) and rank 0 merges; the group uses
gloo on the CPU and NCCL on CUDA. Ranks meet in collectives only at the start; at the end there
is no barrier (:func:`finish`): each rank reports through the store and leaves, and rank 0 waits
for the others only while their shards keep finishing. :func:`run` hands shards to this process
or to worker processes as they free up, with one progress bar per rank. torch is
imported only under torchrun or when a device is resolved, so importing this module stays light.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import devices
from .errors import ImHardError, InvalidValueError, StalledError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

#: How long the group's collectives may wait for a rank. They happen only at the start (rank 0's
#: checks, the list of missing shards), where ranks differ by their start-up alone; the end of a
#: job is no collective (:func:`finish`).
GROUP_TIMEOUT = timedelta(minutes=30)
#: Rank 0 waits for the other ranks' last shards while shards keep finishing: it gives up when
#: none has finished for STALL_FACTOR times the mean shard time so far, and never sooner than
#: STALL_FLOOR (a rank's first shard includes its start-up).
STALL_FLOOR = timedelta(minutes=30)
STALL_FACTOR = 10
#: Seconds between rank 0's looks at the store while it waits.
POLL_S = 2.0
#: Store counters over the whole group: tasks finished by any rank, and their milliseconds.
TASKS_DONE, TASK_MS = "imhard/tasks/done", "imhard/tasks/ms"


def check_resume(recorded: Mapping, asked: Mapping, pinned: Sequence[str], *, job: str,
                 noun: str, fix: str) -> None:
    """Refuse to resume ``job`` when a setting in ``pinned`` differs between what it ``recorded``
    when it started and what is ``asked`` now: one sentence listing each difference, then
    ``fix``. The one resume check of mining runs and ImageNet-C builds."""
    def show(value):
        return "nothing recorded" if value is None else repr(value)

    diffs = [f"{k}: {noun} has {show(recorded.get(k))}, asked {show(asked.get(k))}"
             for k in pinned if recorded.get(k) != asked.get(k)]
    if diffs:
        raise InvalidValueError(f"{job} was started with other settings ({'; '.join(diffs)}); "
                                f"{fix}")


def count(items: int, shard_size: int) -> int:
    """How many shards ``items`` items make: ceil(items / shard_size)."""
    return -(-items // shard_size)


def split(items: Sequence[T], shard_size: int) -> list[Sequence[T]]:
    """``items`` cut in shards of ``shard_size`` (the last may be shorter)."""
    return [items[i:i + shard_size] for i in range(0, len(items), shard_size)]


def shard_file(folder: Path, k: int) -> Path:
    """Shard ``k``'s file: ``<folder>/shard-NNNNN.parquet``."""
    return folder / f"shard-{k:05d}.parquet"


def missing(paths: Iterable[Path]) -> list[int]:
    """The job's shards (by number ``g``, in the order of ``paths``, each shard's output file)
    not written yet."""
    return [g for g, path in enumerate(paths) if not path.exists()]


def shared_missing(paths: Iterable[Path], ranks: Ranks) -> list[int]:
    """:func:`missing` as rank 0 sees it, on every rank (one list to hand out from: a rank that
    looked later could see a shard another rank has just written)."""
    todo = missing(paths)
    if not ranks.distributed:
        return todo
    import torch.distributed as dist

    box = [todo]
    dist.broadcast_object_list(box, src=0)
    return box[0]


_HANDOUTS = itertools.count()


def handout(todo: Sequence[int], ranks: Ranks) -> Iterator[int]:
    """The shards of ``todo`` (the same list on every rank: :func:`shared_missing`) this rank
    runs, each taken when the rank is free: a counter in the torch.distributed store
    (``store.add``), so a slow rank never holds shards a free one could run. A shard a lost rank
    had started has no file, so a restarted job hands it out again. One process: all, in order.
    Every rank must make the same sequence of calls (the counter's key is their number)."""
    if not ranks.distributed:
        yield from todo
        return
    store = _store()
    key = f"imhard/handout/{next(_HANDOUTS)}"
    while (k := store.add(key, 1) - 1) < len(todo):
        yield todo[k]


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this process created the group and destroys it at the end

    @property
    def distributed(self) -> bool:
        return self.world > 1


def is_rank_zero() -> bool:
    """True outside torchrun and on its rank 0 (the one that prints)."""
    return int(os.environ.get("RANK", "0")) == 0


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """:func:`imagenet_hard.devices.resolve_device` for this rank, made the current CUDA device."""
    import torch

    dev = devices.resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


def group_backend(device_type: str, local_world: int, gpus: int) -> str:
    """NCCL when every rank on this machine has a GPU of its own; else gloo, which also carries
    CUDA tensors: NCCL refuses two ranks on one GPU ("Duplicate GPU detected"), and the group
    only passes rank 0's checks and the list of shards to run."""
    return "nccl" if device_type == "cuda" and gpus >= local_world else "gloo"


def setup(device, cpu_only: bool = False) -> tuple[Ranks, torch.device | str]:
    """Join the torchrun process group when there is one; the device this rank uses (``"cpu"``,
    without importing torch, for a ``cpu_only`` job outside torchrun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Ranks(), "cpu" if cpu_only else resolve_device(device)
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    owns = False
    if not dist.is_initialized():
        import torch

        gpus = torch.cuda.device_count() if dev.type == "cuda" else 0
        backend = group_backend(dev.type, int(os.environ.get("LOCAL_WORLD_SIZE", "1")), gpus)
        dist.init_process_group(backend=backend, timeout=GROUP_TIMEOUT,
                                device_id=dev if backend == "nccl" else None)
        owns = True
    return Ranks(dist.get_rank(), dist.get_world_size(), local, owns), dev


def broadcast_error(ranks: Ranks, message: str | None) -> str | None:
    """Rank 0's error message (or None) on every rank, so all stop together."""
    if not ranks.distributed:
        return message
    import torch.distributed as dist

    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_on_rank_zero(ranks: Ranks, check: Callable[[], Any],
                       error: type[ImHardError] = ImHardError) -> None:
    """Run ``check`` on rank 0; if it raises, every rank raises: rank 0 its own error, the others
    ``error`` with its message."""
    failure = None
    if ranks.rank == 0:
        try:
            check()
        except ImHardError as exc:
            failure = exc
    message = broadcast_error(ranks, str(failure) if failure else None)
    if failure:
        raise failure
    if message:
        raise error(message)


def _store():
    import torch.distributed as dist

    return dist.distributed_c10d._get_default_store()


def stall_limit(tasks: int, task_ms: int) -> float:
    """Seconds rank 0 waits with no task finishing anywhere before it gives up: STALL_FACTOR
    times the mean task time of the ``tasks`` finished so far (``task_ms`` in all), at least
    STALL_FLOOR."""
    mean = task_ms / 1000 / tasks if tasks else 0.0
    return max(STALL_FLOOR.total_seconds(), STALL_FACTOR * mean)


_FINISHES = itertools.count()


def finish(ranks: Ranks, counts: Sequence[int], merge: Callable[[list[int]], T], *,
           progress: Callable[[], tuple[int, int]] | None = None,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> T | None:
    """End a job without a barrier: this rank adds its ``counts`` (e.g. images and crops it
    computed) and itself to counters in the torch.distributed store. A rank other than 0 then
    returns None at once; rank 0 waits until every rank has reported, then returns
    ``merge(counts summed over ranks)``. It waits as long as tasks keep finishing somewhere
    (:func:`run` counts them in the store; ``progress``, when given, says instead: tasks finished
    and their milliseconds) and raises :class:`StalledError` when none has for
    :func:`stall_limit`: a stuck rank costs a rerun of its shards, never hours in a collective.
    One process: ``merge(counts)``. Every rank must make the same sequence of calls."""
    if not ranks.distributed:
        return merge([int(c) for c in counts])
    store = _store()
    key = f"imhard/finish/{next(_FINISHES)}"
    for i, c in enumerate(counts):
        store.add(f"{key}/count/{i}", int(c))
    reported = store.add(f"{key}/ranks", 1)
    if ranks.rank != 0:
        return None
    seen, since = -1, clock()
    while reported < ranks.world:
        tasks, ms = progress() if progress else (store.add(TASKS_DONE, 0), store.add(TASK_MS, 0))
        now = clock()
        if tasks != seen:
            seen, since = tasks, now
        limit = stall_limit(tasks, ms)
        if now - since > limit:
            raise StalledError(
                f"{ranks.world - reported} of {ranks.world} ranks have not finished and no "
                f"shard has finished for {round(now - since)} s (limit {round(limit)} s: "
                f"{STALL_FACTOR}x the mean shard time, at least "
                f"{round(STALL_FLOOR.total_seconds())} s); the finished shards are kept, so "
                "rerun the same command to run the rest")
        sleep(POLL_S)
        reported = store.add(f"{key}/ranks", 0)
    return merge([store.add(f"{key}/count/{i}", 0) for i in range(len(counts))])


def teardown(ranks: Ranks) -> None:
    if ranks.owns_group:
        import torch.distributed as dist

        dist.destroy_process_group()


def run(tasks: Iterable[T], work: Callable[[T], Any], on_done: Callable[[T, Any], None], *,
        size: Callable[[T], int] = len, workers: int = 0, desc: str = "job",
        ranks: Ranks | None = None, progress: bool = False, preload: Sequence[str] = (),
        initializer: Callable[[], None] | None = None, total: int | None = None) -> None:
    """Run ``work`` on every task, here (``workers == 0``) or in that many worker processes
    (forkserver, ``preload`` imported once), handing out tasks as workers free up; call
    ``on_done(task, result)`` here as each ends. The progress bar counts ``size(task)`` items
    per task (one bar per rank; of ``total`` items, or of all when ``tasks`` is a sequence).
    Under torchrun each task's end is counted in the store, the progress :func:`finish` watches."""
    from tqdm import tqdm

    ranks = ranks or Ranks()
    if total is None and isinstance(tasks, Sequence):
        total = sum(size(t) for t in tasks)
    bar = tqdm(total=total, desc=f"{desc} (rank {ranks.rank})"
               if ranks.distributed else desc, unit="img", disable=not progress,
               position=ranks.rank)

    store = _store() if ranks.distributed else None
    last = [time.perf_counter()]

    def done(task, result) -> None:
        bar.update(size(task))
        on_done(task, result)
        if store is not None:  # the progress rank 0 watches at the end (finish)
            now = time.perf_counter()  # workers in parallel: a task takes that many intervals
            store.add(TASK_MS, int(1000 * (now - last[0]) * max(workers, 1)))
            store.add(TASKS_DONE, 1)
            last[0] = now

    try:
        if workers == 0:
            for task in tasks:
                done(task, work(task))
        else:
            _in_processes(tasks, work, done, workers, preload, initializer)
    finally:
        bar.close()


def _in_processes(tasks, work, done, workers: int, preload, initializer) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    it = iter(tasks)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=initializer) as pool:
        pending_: dict = {}

        def fill():
            while len(pending_) < 2 * workers and (task := next(it, None)) is not None:
                pending_[pool.submit(work, task)] = task

        fill()
        try:
            while pending_:
                finished, _ = wait(pending_, return_when=FIRST_COMPLETED)
                for fut in finished:
                    done(pending_.pop(fut), fut.result())
                fill()
        except BaseException:
            for fut in pending_:
                fut.cancel()
            raise
