"""The ``imagenet-c`` source tables: every image of a built base source (ImageNet, ImageNet-ReaL
or the offline sample) corrupted at full resolution, one source table per (corruption, severity).

Layout under the data home::

    sources/imagenet_c_<corruption>_<severity>.parquet          the source table
    sources/imagenet_c_<corruption>_<severity>.rejects.parquet
    sources/imagenet_c/<corruption>/<severity>/<base id>.jpg    the images (or .png)
    sources/imagenet_c/.shards/<table>/                        while a table is being built:
        plan.json, shard-NNNNN.parquet                          pinned settings, finished shards

Rows: id ``imagenet_c/<corruption>/<severity>/<base id>``, origin ``imagenet_c/<corruption>/
<severity>``, the base row's labels and label space. Each image's seed is
:func:`imagenet_hard.corruptions.image_seed` of (base id, corruption, severity), so its bytes
depend on nothing else. The base's images, sorted by id, are cut in shards; each shard is written
once, atomically, after its images, and a rerun skips finished shards, so a killed build resumes to
the same bytes. Shards are spread over worker processes, and over ``torchrun`` ranks (each rank
takes the next unwritten shard when it is free; rank 0 writes the tables) by the sharded-job
engine :mod:`imagenet_hard.jobs`; this module supplies the per-shard work and the merge.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import pyarrow.parquet as pq

from .. import catalog, jobs
from .. import home as homes
from ..catalog import IMAGENET_C, imagenet_c
from ..catalog import parse as parse_table
from ..errors import ImHardError, InvalidValueError, MissingFileError, OutsideHomeError
from ..files import write_bytes_atomic, write_json_atomic
from ..pixels import open_image, to_rgb
from ..records import (
    REJECT_SCHEMA,
    SOURCE_SCHEMA,
    Reject,
    SourceRow,
    make_id,
    read_table,
    table_label_spaces,
    write_source_table,
    write_table,
)
from ..sources import BuildResult
from . import (
    BACKENDS,
    MIN_SIDE,
    NAMES,
    SEVERITIES,
    check_backend,
    check_name,
    check_severity,
    corrupt_batch,
    image_seed,
)

SOURCE = IMAGENET_C
ORIGIN = "imagenet_c"
BASES = ("imagenet-real", "imagenet", "sample")
FORMATS = {"jpeg": ".jpg", "png": ".png"}
JPEG_QUALITY = 85  # what ImageNet-C saved (PIL, quality=85, optimize=True)
DEFAULT_SHARD_SIZE = 64
PLAN_FORMAT = "1"
META_IMAGENET_C = b"imagenet_hard.imagenet_c"
SEED_RULE = ("first 4 bytes, big-endian, of sha256('<base image id>|<corruption>|<severity>'), "
             "seeding numpy.random.RandomState per image")
#: Settings a resumed table must share with the run that started it.
PINNED = ("corruption", "severity", "base", "base_images", "base_sha256", "backend", "device",
          "image_format", "shard_size", "versions")


def parse_corruptions(text: str) -> tuple[str, ...]:
    """``fog,snow`` or a group: ``all``, ``paper`` (the paper's six), ``benchmark``, ``held-out``."""
    from . import BENCHMARK, HELD_OUT, PAPER_SIX

    groups = {"all": NAMES, "paper": PAPER_SIX, "benchmark": BENCHMARK, "held-out": HELD_OUT}
    out: list[str] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        names = groups.get(part.lower().replace("_", "-"), None) or (check_name(part),)
        out.extend(n for n in names if n not in out)
    if not out:
        raise InvalidValueError("--corruptions is empty; name some of: all, paper, benchmark, "
                                f"held-out, {', '.join(NAMES)}")
    return tuple(out)


def parse_severities(text: str) -> tuple[int, ...]:
    """``1-5``, ``3`` or ``1,3-5`` → sorted severities."""
    out: set[int] = set()
    for part in (p.strip() for p in str(text).split(",")):
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise InvalidValueError(f"--severities {text!r}: write severities 1..5 as 1-5, 3 or "
                                    "1,3-5") from None
        if first > last:
            raise InvalidValueError(f"--severities {text!r}: range {part} is empty")
        out.update(check_severity(s) for s in range(first, last + 1))
    return tuple(sorted(out))


@dataclass(frozen=True)
class CorruptOptions:
    """What an ``imagenet-c`` build makes; validated on construction."""

    base: str = "imagenet-real"
    corruptions: tuple[str, ...] = NAMES
    severities: tuple[int, ...] = SEVERITIES
    backend: str = "reference"
    device: str | None = None  # torch backend: None is CUDA when present (devices.resolve_device)
    image_format: str = "jpeg"
    workers: int | None = None  # processes (None: one per CPU): reference: corrupt; torch: decode
    shard_size: int = DEFAULT_SHARD_SIZE
    limit: int | None = None  # only the base's first LIMIT images by id (a quick look)
    ids: tuple[str, ...] | None = None  # only these base images (the demo's chosen photos)

    def __post_init__(self):
        base = str(self.base).strip().lower().replace("_", "-")
        if base not in BASES:
            raise InvalidValueError(f"--from {self.base!r}: imagenet-c is made from one of "
                                    f"{', '.join(BASES)}")
        object.__setattr__(self, "base", base)
        names = self.corruptions
        names = parse_corruptions(names) if isinstance(names, str) else \
            tuple(dict.fromkeys(check_name(n) for n in names))
        sevs = self.severities
        sevs = parse_severities(sevs) if isinstance(sevs, str) else \
            tuple(sorted({check_severity(s) for s in sevs}))
        if not names or not sevs:
            raise InvalidValueError("name at least one corruption and one severity")
        object.__setattr__(self, "corruptions", names)
        object.__setattr__(self, "severities", sevs)
        check_backend(self.backend)
        if self.image_format not in FORMATS:
            raise InvalidValueError(f"--format {self.image_format!r}: one of "
                                    f"{', '.join(FORMATS)}")
        if self.workers is not None and int(self.workers) < 0:
            raise InvalidValueError(f"--workers must be 0 or more, got {self.workers}")
        if int(self.shard_size) < 1:
            raise InvalidValueError(f"--shard-size must be positive, got {self.shard_size}")
        if self.limit is not None and int(self.limit) < 1:
            raise InvalidValueError(f"--limit must be positive, got {self.limit}")
        if self.ids is not None:
            if isinstance(self.ids, str) or not self.ids or \
                    not all(isinstance(i, str) and i for i in self.ids):
                raise InvalidValueError(f"ids must name base images, got {self.ids!r}")
            object.__setattr__(self, "ids", tuple(dict.fromkeys(self.ids)))

    def tables(self) -> list[tuple[str, int]]:
        return [(n, s) for n in self.corruptions for s in self.severities]


@dataclass(frozen=True)
class BaseImage:
    """One image of the base table and where its corrupted copies go (or why they cannot)."""

    id: str
    path: str
    label: list[int]
    english_label: list[str]
    label_space: str
    out: str | None  # file path relative to <table folder>, None when rejected at planning
    reason: str = ""


@dataclass
class Plan:
    base: str
    images: list[BaseImage]
    label_spaces: dict[str, list[int]]
    base_sha256: str
    versions: dict[str, str] = field(default_factory=dict)


def output_file(base_id: str, suffix: str) -> str | None:
    """``sample/n02123045/chelsea.png`` → ``sample/n02123045/chelsea.jpg``; None when the id
    could leave the table's folder."""
    p = PurePosixPath(base_id)
    if p.is_absolute() or "\\" in base_id or any(part in ("", ".", "..") for part in p.parts) \
            or not p.name:
        return None
    return p.with_suffix(suffix).as_posix()


def _inside(home: Path, rel) -> bool:
    """Whether a table's path stays inside the data home (a row that does not is a reject)."""
    try:
        homes.inside_home(home, rel, "base table")
    except OutsideHomeError:
        return False
    return True


def read_base(base: str, home: Path, image_format: str, limit: int | None = None,
              ids: tuple[str, ...] | None = None) -> Plan:
    """The base table's images sorted by id (only ``ids`` where given, then the first
    ``limit``), with their output files (collisions rejected)."""
    import hashlib

    path = parse_table(base).path(home)
    if not path.exists():
        raise MissingFileError(
            f"imagenet-c is made from source {base!r}, which is not built here ({path} does "
            f"not exist); run `imhard build --source {base}` first, or pass --from with one of "
            f"{', '.join(BASES)}")
    table = read_table(path, what=f"source table {base!r}")
    cols = table.select(["id", "path", "label", "english_label", "label_space", "sha256"])
    rows = sorted(cols.to_pylist(), key=lambda r: r["id"])
    if ids is not None:
        have = {r["id"] for r in rows}
        missing = [i for i in ids if i not in have]
        if missing:
            raise InvalidValueError(f"{base!r} has no image {missing[0]!r}; name ids of its "
                                    "table (see its parquet's id column)")
        wanted = set(ids)
        rows = [r for r in rows if r["id"] in wanted]
    rows = rows[:limit]
    digest = hashlib.sha256()
    taken: dict[str, str] = {}
    images = []
    for r in rows:
        digest.update(f"{r['id']}\t{r['sha256']}\n".encode())
        out = output_file(r["id"], FORMATS[image_format])
        reason = "" if out else f"id {r['id']!r} cannot name a file inside the table's folder"
        if not _inside(home, r["path"]):
            out, reason = None, f"path {r['path']!r} is not inside the data home"
        if out and out in taken:
            reason = f"its output file {out} is already that of {taken[out]}"
            out = None
        elif out:
            taken[out] = r["id"]
        images.append(BaseImage(r["id"], r["path"], list(r["label"]), list(r["english_label"]),
                                r["label_space"], out, reason))
    return Plan(base, images, table_label_spaces(table), digest.hexdigest())


def versions(backend: str) -> dict[str, str]:
    """Package versions that shape the output bytes (recorded and pinned per table)."""
    from importlib.metadata import version

    from PIL import features

    from .reference import versions as reference_versions

    out = reference_versions()
    out["libjpeg"] = str(features.version("jpg"))
    out["zlib"] = str(features.version("zlib"))
    if backend == "torch":
        out["torch"] = version("torch")
    return out


def table_record(opts: CorruptOptions, plan: Plan, name: str, severity: int,
                 device_type: str) -> dict:
    return {
        "format": PLAN_FORMAT,
        "source": SOURCE,
        "corruption": name,
        "severity": severity,
        "origin": imagenet_c(name, severity).origin,
        "base": plan.base,
        "base_images": len(plan.images),
        "base_sha256": plan.base_sha256,
        "backend": opts.backend,
        "device": device_type,
        "image_format": opts.image_format,
        "jpeg_quality": JPEG_QUALITY if opts.image_format == "jpeg" else None,
        "seed_rule": SEED_RULE,
        "shard_size": int(opts.shard_size),
        "versions": plan.versions,
    }


def table_folder(home: Path, name: str, severity: int) -> Path:
    return homes.sources_dir(home) / ORIGIN / name / str(severity)


def shards_dir(home: Path, table: str) -> Path:
    return homes.sources_dir(home) / ORIGIN / ".shards" / table


def shard_file(home: Path, table: str, k: int) -> Path:
    return jobs.shard_file(shards_dir(home, table), k)


# -- one shard ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardTask:
    home: str
    table: str
    name: str
    severity: int
    index: int
    images: tuple[BaseImage, ...]
    backend: str
    device: str
    image_format: str


def _decode(home: Path, img: BaseImage):
    """The base image as a uint8 (H, W, 3) array, or the reason it cannot be corrupted."""
    import numpy as np

    try:   # the one image rule (stored pixel order), as the base table's width/height say
        arr = np.asarray(to_rgb(open_image(home / img.path)))
    except (OSError, ValueError) as exc:   # missing (an OSError), or pixels.ImageError
        return f"base image unreadable: {getattr(exc, 'reason', exc)}"
    if min(arr.shape[:2]) < MIN_SIDE:
        return (f"{arr.shape[1]}x{arr.shape[0]} is below the corruptions' minimum of "
                f"{MIN_SIDE}x{MIN_SIDE}")
    return arr


def encode(arr, image_format: str) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    if image_format == "jpeg":
        Image.fromarray(arr).save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        Image.fromarray(arr).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _corrupt_all(task: ShardTask, arrays: list, seeds: list[int]) -> list:
    """Corrupted arrays, or an error message per image (reference: one image's failure does not
    stop the build; torch: images of one size are batched)."""
    if task.backend == "torch":
        return corrupt_batch(arrays, task.name, task.severity, seeds, "torch", task.device)
    out = []
    for arr, seed in zip(arrays, seeds, strict=True):
        try:
            out.append(corrupt_batch([arr], task.name, task.severity, [seed])[0])
        except (ValueError, IndexError, ArithmeticError, ImHardError) as exc:
            out.append(f"{task.name} failed: {type(exc).__name__}: {exc}")
    return out


@dataclass
class LoadedShard:
    """A shard's decoded images (``todo``: image, uint8 array) and the rejects found decoding."""

    task: ShardTask
    todo: list
    rejects: list[Reject]


def load_shard(task: ShardTask) -> LoadedShard:
    """Decode a shard's base images (the CPU part of a torch-backend shard, run in its loader
    workers)."""
    home = Path(task.home)
    rejects: list[Reject] = []
    todo: list[tuple[BaseImage, object]] = []
    for img in task.images:
        arr = _decode(home, img) if img.out else img.reason
        (rejects.append(Reject(img.path, arr)) if isinstance(arr, str) else todo.append((img, arr)))
    return LoadedShard(task, todo, rejects)


def corrupt_shard(shard: LoadedShard, encode_many=None) -> None:
    """Corrupt a decoded shard, encode and write its images (``encode_many(arrays, format)``:
    a pool's; in order, here, by default), then the shard file."""
    import hashlib

    task, todo, rejects = shard.task, shard.todo, list(shard.rejects)
    home = Path(task.home)
    folder = table_folder(home, task.name, task.severity)
    results = _corrupt_all(task, [a for _, a in todo],
                           [image_seed(img.id, task.name, task.severity) for img, _ in todo])
    made = [out for out in results if not isinstance(out, str)]
    encoded = iter((encode_many or _encode_here)(made, task.image_format))
    rows = []
    for (img, arr), out in zip(todo, results, strict=True):
        if isinstance(out, str):
            rejects.append(Reject(img.path, out))
            continue
        data = next(encoded)
        dest = folder / img.out
        write_bytes_atomic(dest, data)
        rows.append(SourceRow(
            id=make_id(SOURCE, f"{task.name}/{task.severity}/{img.id}"),
            origin=imagenet_c(task.name, task.severity).origin,
            path=dest.relative_to(home).as_posix(), label=img.label,
            english_label=img.english_label, label_space=img.label_space,
            width=int(arr.shape[1]), height=int(arr.shape[0]),
            sha256=hashlib.sha256(data).hexdigest()))
    meta = {b"imagenet_hard.rejects": json.dumps([asdict(r) for r in rejects]).encode()}
    write_table(rows, SOURCE_SCHEMA, shard_file(home, task.table, task.index), meta)


def _encode_here(arrays: list, image_format: str) -> list[bytes]:
    return [encode(a, image_format) for a in arrays]


def run_shard(task: ShardTask) -> None:
    """Corrupt, encode and write one shard's images, then the shard file."""
    corrupt_shard(load_shard(task))


#: The torch backend's default loader workers (decoding shards ahead of the device).
TORCH_LOADER_WORKERS = 4


def _loaded(tasks: list[ShardTask], order, workers: int):
    """The torch backend's shards ``tasks[g]`` for each ``g`` of ``order`` (taken as the loader
    asks: :func:`imagenet_hard.jobs.handout`), decoded ahead by ``workers`` DataLoader workers
    while the device corrupts (numpy arrays come back pickled through pipes, not /dev/shm). Each
    image's draws come from its own seeded generator in :func:`corrupt_shard`, here, so the bytes
    do not depend on ``workers``."""
    from torch.utils.data import DataLoader

    loader = DataLoader(_ShardList(tasks), sampler=order, batch_size=None, num_workers=workers,
                        collate_fn=_as_is, prefetch_factor=1 if workers else None)
    yield from loader


class _ShardList:
    """A map-style dataset of shards (DataLoader needs only ``__len__`` and ``__getitem__``)."""

    def __init__(self, tasks: list[ShardTask]):
        self.tasks = tasks

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, i: int) -> LoadedShard:
        return load_shard(self.tasks[i])


def _as_is(item):
    return item


def read_shard(path: Path) -> tuple[list[SourceRow], list[Reject]]:
    table = read_table(path, what="imagenet-c shard")
    meta = json.loads((table.schema.metadata or {}).get(b"imagenet_hard.rejects", b"[]"))
    rows = [SourceRow(**r) for r in table.to_pylist()]
    return rows, [Reject(**r) for r in meta]


def _worker_init() -> None:
    """One thread per worker process: the workers already fill the cores."""
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


# -- the whole build ------------------------------------------------------------------------


def _prepare_table(home: Path, opts: CorruptOptions, plan: Plan, name: str, severity: int,
                   device_type: str, force: bool) -> None:
    """Clear a table for --force, check a finished or unfinished one against the options, and pin
    the settings of one about to start (rank 0 only)."""
    ref = imagenet_c(name, severity)
    table, path, shown = ref.stem, ref.path(home), ref.name
    record = table_record(opts, plan, name, severity, device_type)
    if force:
        for p in (path, ref.rejects_path(home)):
            p.unlink(missing_ok=True)
        for d in (shards_dir(home, table), table_folder(home, name, severity)):
            shutil.rmtree(d, ignore_errors=True)
    elif path.exists():
        old = table_meta(path)
        diffs = [f"{k} {old.get(k)!r}" for k in ("base", "base_images", "backend",
                                                     "image_format") if old.get(k) != record[k]]
        if diffs:
            raise InvalidValueError(f"{shown} is already built with {', '.join(diffs)}; pass "
                                    "--force to rebuild it with the options given")
        return
    if not check_plan(home, record):
        write_json_atomic(shards_dir(home, table) / "plan.json", record)


def check_plan(home: Path, record: dict) -> bool:
    """Whether the table has an unfinished build; raise if its pinned settings differ (another
    version of a package on another torchrun machine, another --shard-size …)."""
    ref = imagenet_c(record["corruption"], record["severity"])
    plan_path = shards_dir(home, ref.stem) / "plan.json"
    if not plan_path.exists():
        return False
    try:
        old = json.loads(plan_path.read_text())
    except (OSError, ValueError):
        old = {}
    jobs.check_resume(old, record, PINNED, job=f"{ref}'s unfinished build", noun="build",
                      fix="rerun with those settings to resume it, or pass --force to start it "
                      "again")
    return True


def table_meta(path: Path) -> dict:
    """The build record an imagenet-c table carries in its parquet metadata ({} if none)."""
    raw = (pq.read_metadata(path).metadata or {}).get(META_IMAGENET_C)
    return json.loads(raw) if raw else {}


def merge_table(home: Path, plan: Plan, name: str, severity: int) -> BuildResult:
    """Write a table and its rejects from its finished shards, then drop the shards."""
    ref = imagenet_c(name, severity)
    table = ref.stem
    record = json.loads((shards_dir(home, table) / "plan.json").read_text())
    paths = [shard_file(home, table, k)
             for k in range(jobs.count(len(plan.images), record["shard_size"]))]
    if gone := jobs.missing(paths):
        raise MissingFileError(f"{ref} lacks shard "
                               f"{paths[gone[0]].name}; rerun the same `imhard build` to finish it")
    rows: list[SourceRow] = []
    rejects: list[Reject] = []
    for path in paths:
        r, j = read_shard(path)
        rows += r
        rejects += j
    rejects_path = ref.rejects_path(home)
    write_table(sorted(rejects, key=lambda r: r.path), REJECT_SCHEMA, rejects_path)
    if not rows:
        raise ImHardError(f"{ref}: no usable images ({len(rejects)} "
                          f"rejected); see {rejects_path}")
    path = ref.path(home)
    write_source_table(rows, path, table, plan.label_spaces,
                       {META_IMAGENET_C: json.dumps(record, sort_keys=True).encode()})
    shutil.rmtree(shards_dir(home, table), ignore_errors=True)
    return BuildResult(ref.name, path, rejects_path, len(rows), len(rejects),
                       skipped=False)


def _result(home: Path, name: str, severity: int, skipped: bool) -> BuildResult:
    ref = imagenet_c(name, severity)
    path, rejects = ref.path(home), ref.rejects_path(home)
    n_rej = pq.read_metadata(rejects).num_rows if rejects.exists() else 0
    return BuildResult(ref.name, path, rejects,
                       pq.read_metadata(path).num_rows, n_rej, skipped)


def build_imagenet_c(home=None, options: CorruptOptions | None = None, force: bool = False,
                     progress: bool = False) -> list[BuildResult]:
    """Build the imagenet-c tables ``options`` asks for; one :class:`BuildResult` per table
    (``skipped`` when it was already built). Resumes unfinished tables; under torchrun every rank
    corrupts its shards and rank 0 writes the tables and returns them (another rank returns []
    as soon as its shards are done: :func:`imagenet_hard.jobs.finish`)."""
    opts = options or CorruptOptions()
    home_dir = homes.data_home(home)
    plan = read_base(opts.base, home_dir, opts.image_format, opts.limit,
                     opts.ids)  # before torch starts
    if opts.backend == "torch":
        from . import load_torch_backend

        load_torch_backend()  # a missing backend fails here, before anything is written
    cpu = opts.backend == "reference"  # torch is imported only for its backend or under torchrun
    ranks, device = jobs.setup("cpu" if cpu else opts.device, cpu_only=cpu)
    try:
        return _build(home_dir, opts, plan, force, progress, ranks, str(device))
    finally:
        jobs.teardown(ranks)


def _build(home: Path, opts: CorruptOptions, plan: Plan, force: bool, progress: bool,
           ranks: jobs.Ranks, device: str) -> list[BuildResult]:
    plan.versions = versions(opts.backend)
    wanted = opts.tables()
    jobs.check_on_rank_zero(ranks, lambda: [
        _prepare_table(home, opts, plan, n, s, device.split(":")[0], force) for n, s in wanted])
    todo = [(n, s) for n, s in wanted
            if not imagenet_c(n, s).path(home).exists()]
    if ranks.rank != 0:  # this machine must make the bytes rank 0 pinned
        for n, s in todo:
            check_plan(home, table_record(opts, plan, n, s, device.split(":")[0]))
    parts = jobs.split(plan.images, opts.shard_size)
    every = [(n, s, k) for n, s in todo for k in range(len(parts))]
    # One list on every rank; each rank takes the next shard when it is free (jobs.handout).
    missing = jobs.shared_missing(
        (shard_file(home, imagenet_c(n, s).stem, k) for n, s, k in every), ranks)
    left = {t: sum(1 for g in missing if every[g][:2] == t) for t in todo}
    built: dict[tuple[str, int], BuildResult] = {}
    if not ranks.distributed:  # shards finished by an earlier, killed run
        built.update({t: merge_table(home, plan, *t) for t in todo if not left[t]})
    if opts.workers is not None:
        workers = opts.workers
    elif opts.backend == "torch":
        # Each loader worker holds a decoded shard ahead (64 full-resolution images) and takes it
        # from jobs.handout at once: a few keep the device fed without holding gigabytes and
        # shards another rank could run.
        workers = min(TORCH_LOADER_WORKERS, os.cpu_count() or 1)
    else:
        workers = os.cpu_count() or 1
    workers = min(workers, len(missing))

    def on_done(task: ShardTask, _result) -> None:
        t = (task.name, task.severity)
        left[t] -= 1
        if not left[t] and not ranks.distributed:
            built[t] = merge_table(home, plan, *t)

    tasks = [ShardTask(str(home), imagenet_c(n, s).stem, n, s, k, tuple(parts[k]), opts.backend,
                       device, opts.image_format) for n, s, k in every]
    order = jobs.handout(missing, ranks)
    total = None if ranks.distributed else sum(len(tasks[g].images) for g in missing)
    if opts.backend == "torch":  # the device corrupts here; loader workers decode, threads encode
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max(1, workers)) as pool:
            def encode_many(arrays, image_format):
                return pool.map(encode, arrays, [image_format] * len(arrays))

            jobs.run(_loaded(tasks, order, workers),
                     lambda shard: corrupt_shard(shard, encode_many),
                     lambda shard, r: on_done(shard.task, r), size=lambda s: len(s.task.images),
                     total=total, desc="imagenet-c", ranks=ranks, progress=progress)
    else:
        jobs.run((tasks[g] for g in order), run_shard, on_done,
                 size=lambda task: len(task.images), workers=workers, total=total,
                 desc="imagenet-c", ranks=ranks, progress=progress,
                 preload=(__name__, "imagecorruptions"), initializer=_worker_init)
    if ranks.distributed:  # no barrier: another rank leaves with nothing to report
        merged = jobs.finish(ranks, [], lambda _: {t: merge_table(home, plan, *t) for t in todo})
        if merged is None:
            return []
        built.update(merged)
    return [built.get((n, s)) or _result(home, n, s, skipped=(n, s) not in todo)
            for n, s in wanted]


@dataclass(frozen=True)
class TableInfo:
    """A built imagenet-c table, as ``imhard sources`` lists it."""

    table: str
    name: str
    corruption: str
    severity: int
    rows: int
    base: str
    backend: str
    image_format: str


def built_tables(home=None) -> list[TableInfo]:
    """Every imagenet-c table built in the data home, in corruption then severity order."""
    out = []
    for path in (ref.path(home) for ref in catalog.built(home) if ref.variant is not None):
        rec = table_meta(path)
        if rec.get("source") != SOURCE or rec.get("corruption") not in NAMES:
            continue
        out.append(TableInfo(path.stem, imagenet_c(rec["corruption"], rec["severity"]).name,
                             rec["corruption"], int(rec["severity"]),
                             pq.read_metadata(path).num_rows, rec.get("base", "?"),
                             rec.get("backend", "?"), rec.get("image_format", "?")))
    return sorted(out, key=lambda t: (NAMES.index(t.corruption), t.severity))


__all__ = [
    "BACKENDS", "BASES", "FORMATS", "JPEG_QUALITY", "SEED_RULE", "CorruptOptions", "TableInfo",
    "build_imagenet_c", "built_tables", "parse_corruptions", "parse_severities",
]
