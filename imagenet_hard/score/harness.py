"""``score`` and ``verify`` of one dataset or a suite of sets: the one scoring driver. A plain run
is a suite of one set (:mod:`.sets`): :func:`predict` runs one child for every set (the model
loaded once), :func:`write_set` turns each set's cache into its predictions parquet and
:func:`recheck` re-predicts every verified sample.

Predictions live in ``<home>/scores/cache/<submission sha>-<set's cache key>[-tta-<mode>]/``,
one part per finished batch. The child may write the cache's ``parts/`` folder, so everything
there is hostile (docs/scoring.md, "What the harness reads back").
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import __version__, catalog, devices
from .. import home as homes
from ..errors import InvalidValueError, MissingFileError, SubmissionError
from ..files import NO_FOLLOW, read_exactly, read_regular, sha256_file, write_json_atomic
from ..labels import NUM_CLASSES
from ..sandbox import choose, default_memory_limit
from . import check
from .metrics import correctness
from .protocols import imagenet_c_summary
from .result import (
    ScoreResult,
    SuiteResult,
    load_result,
    load_suite,
    predictions_path,
    predictions_table,
    read_predictions,
    suite_predictions_path,
    write_predictions,
)
from .runner import ChildReport, run_child
from .sets import IMAGENET_HARD_SET, ScoreSet, published_set, resolve_sets
from .tta import TtaMode, child_batch
from .worker import (
    PART_HEADER,
    PART_K,
    PART_MAGIC,
    PART_SUFFIX,
    PART_VERSION,
    ChildJob,
    Segment,
    part_size,
)

#: Rows in one part: far beyond any batch, and it keeps one part under 70 MiB.
MAX_PART_ROWS = 1 << 20
#: Largest ``metadata.json`` the parent reads back (it holds the submission's METADATA).
MAX_METADATA_BYTES = 1 << 20
_PART_NAME = re.compile(r"part-(\d{1,18})-(\d{1,9})" + re.escape(PART_SUFFIX))


@dataclass
class RunOptions:
    """How to run a submission (everything except what and on which data)."""

    device: str | None = None
    batch_size: int | None = None   # None: from the device (devices.scoring_loader)
    workers: int | None = None
    timeout: float = 600.0
    load_timeout: float = 1800.0
    no_network: bool = False
    sandbox: str = "auto"           # auto | bwrap | unshare | none (unconfined: trusted files only)
    memory_limit: int | None = field(default_factory=default_memory_limit)
    progress: bool = False
    on_output: Callable[[str], None] | None = None

    def check_sandbox(self) -> str:
        """Which sandbox will run the submission; fails before any data is opened."""
        return choose(self.sandbox, self.no_network)

    def resolved_device(self) -> str:
        return devices.device_name(self.device)

    def resolved_workers(self) -> int:
        return devices.scoring_loader(self.resolved_device(), self.workers)[0]

    def resolved_batch_size(self) -> int:
        return devices.scoring_loader(self.resolved_device(), batch_size=self.batch_size)[1]


def submission_file(path: str | Path) -> Path:
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise MissingFileError(f"submission {path} does not exist")
    if path.suffix != ".py":
        raise InvalidValueError(f"submission {path} must be a Python file (.py)")
    return path


def parts_dir(cache: Path) -> Path:
    """The one folder of a cache the child may write: its prediction parts."""
    return Path(cache) / "parts"


def prepare_cache(cache: Path) -> Path:
    """Make ``cache`` and its parts folder; refuse a link there (it would be mounted writable
    into the sandbox, handing the child its target)."""
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    parts = parts_dir(cache)
    with contextlib.suppress(FileExistsError):
        parts.mkdir()
    for path in (cache, parts):
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise SubmissionError(f"{path} is not a folder the harness made (a link or file a "
                                  f"submission left there); delete {cache} and score again")
    return parts


def _bad_part(cache: Path, name: str, problem: str) -> SubmissionError:
    return SubmissionError(
        f"prediction part {name} in {parts_dir(cache)} {problem}, so the harness's worker did "
        f"not write it (the submission may have): delete {cache} and score again")


def _read_part(cache: Path, dfd: int, name: str, allowed, seen: set) -> tuple:
    """One part's (rows, top5, top5_prob, seconds), every check passed."""
    m = _PART_NAME.fullmatch(name)
    if not m:
        raise _bad_part(cache, name, f"has a name not of the form part-<first row>-<rows>"
                                     f"{PART_SUFFIX}")
    first, n = int(m.group(1)), int(m.group(2))
    if not 0 < n <= MAX_PART_ROWS:
        raise _bad_part(cache, name, f"names {n} rows (a part holds 1 to {MAX_PART_ROWS})")
    try:
        fd = os.open(name, NO_FOLLOW, dir_fd=dfd)
    except OSError as exc:
        raise _bad_part(cache, name, f"is not a regular file ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _bad_part(cache, name, "is not a regular file")
        if st.st_size != part_size(n):
            raise _bad_part(cache, name, f"has {st.st_size} bytes, not the {part_size(n)} bytes "
                                         f"of a part of {n} rows")
        data = read_exactly(fd, st.st_size)
    finally:
        os.close(fd)
    if data is None:
        raise _bad_part(cache, name, "changed size while it was read")
    if PART_HEADER.unpack_from(data) != (PART_MAGIC, PART_VERSION, PART_K, n):
        raise _bad_part(cache, name, f"does not start with the header of a version "
                                     f"{PART_VERSION} part of {n} rows")
    at = PART_HEADER.size
    rows = np.frombuffer(data, "<i8", n, at).tolist()
    top5 = np.frombuffer(data, "<i8", n * PART_K, at + 8 * n).reshape(n, PART_K)
    prob = np.frombuffer(data, "<f4", n * PART_K, at + 8 * n * (1 + PART_K)).reshape(n, PART_K)
    seconds = float(np.frombuffer(data, "<f8", 1, len(data) - 8)[0])
    if rows[0] != first:
        raise _bad_part(cache, name, f"starts at row {rows[0]}, not at the row {first} its name "
                                     "says")
    if len(set(rows)) != n or not seen.isdisjoint(rows):
        raise _bad_part(cache, name, "repeats rows that another part (or itself) holds")
    if allowed is not None and not all(r in allowed for r in rows):
        bad = next(r for r in rows if r not in allowed)
        raise _bad_part(cache, name, f"holds row {bad}, not one of the rows this run may ask for")
    if not ((top5 >= 0) & (top5 < NUM_CLASSES)).all():
        raise _bad_part(cache, name, f"holds classes outside 0–{NUM_CLASSES - 1}")
    if not (np.isfinite(prob).all() and ((prob >= 0) & (prob <= 1.001)).all()
            and np.isfinite(seconds) and seconds >= 0):
        raise _bad_part(cache, name, "holds probabilities or seconds that are not finite "
                                     "numbers in range")
    seen.update(rows)
    return rows, top5, prob, seconds


class PartRows(Mapping):
    """The finished rows of a cache, row → (top5, top5_prob), in three arrays sorted by row, not
    a Python object per row."""

    def __init__(self, idx: list, top5: list, prob: list):
        idx = np.concatenate(idx) if idx else np.zeros(0, np.int64)
        order = np.argsort(idx, kind="stable")
        self._idx = idx[order]
        self._top5 = (np.concatenate(top5) if top5 else np.zeros((0, PART_K), np.int64))[order]
        self._prob = (np.concatenate(prob) if prob else np.zeros((0, PART_K), np.float32))[order]

    def __getitem__(self, i):
        p = int(np.searchsorted(self._idx, i))
        if p == len(self._idx) or self._idx[p] != i:
            raise KeyError(i)
        return self._top5[p], self._prob[p]

    def __iter__(self):
        return iter(self._idx.tolist())

    def __len__(self) -> int:
        return len(self._idx)

    def missing(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        return indices[~np.isin(indices, self._idx)]

    def take(self, indices) -> tuple[np.ndarray, np.ndarray]:
        pos = np.searchsorted(self._idx, np.asarray(indices, dtype=np.int64))
        return self._top5[pos], self._prob[pos]


def read_parts(cache: Path, allowed=None) -> tuple[PartRows, float]:
    """Finished rows in a cache and their images/s. ``allowed``: the rows a part may hold
    (``in`` and ``len``; None: any). A part that is not exactly what the worker writes fails in
    one sentence; other names (an older harness's ``.npz``, a killed batch's temporary file) are
    skipped."""
    cache = Path(cache)
    try:
        dfd = os.open(parts_dir(cache), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return PartRows([], [], []), 0.0
    except OSError as exc:
        raise SubmissionError(f"{parts_dir(cache)} is not a folder the harness made "
                              f"({exc.strerror}); delete {cache} and score again") from None
    idxs, top5s, probs = [], [], []
    seen: set = set()
    seconds, n = 0.0, 0
    most = len(allowed) if allowed is not None else None
    try:
        names = []
        with os.scandir(dfd) as entries:
            for entry in entries:  # a folder of millions of names must not fill the parent
                if entry.name.startswith("part-") and entry.name.endswith(PART_SUFFIX):
                    names.append(entry.name)
                    if most is not None and len(names) > most:
                        raise _bad_part(cache, entry.name, f"is one part too many for the "
                                                           f"{most} rows this run may ask for")
        for name in sorted(names):
            idx, top5, prob, secs = _read_part(cache, dfd, name, allowed, seen)
            idxs.append(np.asarray(idx, dtype=np.int64))
            top5s.append(top5)
            probs.append(prob)
            seconds += secs
            n += len(idx)
    finally:
        os.close(dfd)
    return PartRows(idxs, top5s, probs), (n / seconds if seconds > 0 else 0.0)


def missing_rows(rows: PartRows, indices, name: str, cache: Path) -> None:
    """Fail when a row of ``indices`` has no prediction once the child reported finishing."""
    missing = rows.missing(indices).tolist()
    if missing:
        raise SubmissionError(
            f"{name} reported finishing, but {_rows_text(missing)} have no predictions in "
            f"{parts_dir(cache)} (a submission must not touch that folder): score again to "
            "predict them")


def _rows_text(rows: list[int]) -> str:
    if rows == list(range(rows[0], rows[0] + len(rows))):
        return f"rows {rows[0]}–{rows[-1]}" if len(rows) > 1 else f"row {rows[0]}"
    shown = ", ".join(str(r) for r in rows[:5])
    return f"rows {shown}" + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


def write_metadata(cache: Path, report: ChildReport) -> None:
    """Keep the submission's METADATA beside the parts (the atomic write replaces, never writes
    through, a link or FIFO an older harness's child left at that name)."""
    path = Path(cache) / "metadata.json"
    if path.is_dir() and not path.is_symlink():
        raise SubmissionError(f"{path} is a folder, not the harness's metadata file (a "
                              f"submission left it there); delete {cache} and score again")
    write_json_atomic(path, {"metadata": report.metadata, "form": report.form})


def read_metadata(cache: Path) -> dict | None:
    """The METADATA :func:`write_metadata` kept, or None."""
    data = read_regular(Path(cache) / "metadata.json", MAX_METADATA_BYTES)
    try:
        saved = json.loads(data) if data is not None else None
    except (ValueError, RecursionError):
        return None
    meta = saved.get("metadata") if isinstance(saved, dict) else None
    return meta if isinstance(meta, dict) else None


@dataclass
class Ask:
    """One set of a run: its rows ``indices`` to predict into ``cache``, whose parts may hold the
    rows ``allowed`` (None: any row of the set's images, which other runs may have scored)."""

    set: ScoreSet
    indices: np.ndarray
    cache: Path
    allowed: Container[int] | None = None

    @property
    def may_hold(self) -> Container[int]:
        return range(len(self.set)) if self.allowed is None else self.allowed


def cache_dir(home, sha: str, s: ScoreSet, tta: TtaMode | None = None) -> Path:
    """``<home>/scores/cache/<submission sha>-<set's cache key>[-tta-<mode key>]``."""
    tail = f"-tta-{tta.key()}" if tta is not None else ""
    return homes.scores_dir(home) / "cache" / f"{sha[:16]}-{s.cache_key}{tail}"


#: Shared memory of one image of a loader batch, a 224×224 float32 RGB tensor: a floor (not a
#: bound on what the child sends, so not in the threat model's table).
SHM_PER_LOADER_IMAGE = 3 * 224 * 224 * 4


def by_cache(asks: list[Ask]) -> dict[Path, list[Ask]]:
    """The asks grouped by cache (sets with the same images and ask share one), in order."""
    shared: dict[Path, list[Ask]] = {}
    for ask in asks:
        shared.setdefault(ask.cache, []).append(ask)
    return shared


def predict(sub: Path, asks: list[Ask], opts: RunOptions, tta: TtaMode | None = None,
            named: bool = True) -> ChildReport | None:
    """Predict, in one child, every asked row missing from its cache; asks sharing a cache run
    once. Under ``tta`` the batch size counts crops per forward pass. Every asked row has a
    valid part in its cache when this returns. ``named``: segments carry their sets' names (a
    plain run's one set has none, so no message names a set)."""
    shared = by_cache(asks)
    wanted = {cache: np.unique(np.concatenate([np.asarray(a.indices, np.int64) for a in group]))
              for cache, group in shared.items()}
    segments = []
    for cache, group in shared.items():
        prepare_cache(cache)
        todo = read_parts(cache, group[0].may_hold)[0].missing(wanted[cache])
        if len(todo):
            s = group[0].set
            arrow, read_only = s.images()
            segments.append(Segment(arrow, todo.tolist(), str(parts_dir(cache)),
                                    read_only=read_only,
                                    name="+".join(a.set.name for a in group) if named else None,
                                    border=s.protocol.border,
                                    classes=None if s.classes is None else list(s.classes)))
    if not segments:
        return None
    batch, spec = child_batch(tta, opts.resolved_batch_size())
    workers = opts.resolved_workers()
    if opts.sandbox == "none":
        # The sandbox gives the child a /dev/shm of the memory limit's size; unconfined, it is
        # the host's, often 64 MB in a container: the model form's loader workers would die.
        workers = devices.fit_shared_memory(workers, batch * SHM_PER_LOADER_IMAGE, 2,
                                            batched=True)
    job = ChildJob(submission=str(sub), device=opts.resolved_device(), batch_size=batch,
                   workers=workers, segments=segments,
                   memory_limit=opts.memory_limit, tta=spec)
    bar, on_output = None, opts.on_output
    if opts.progress:
        from tqdm import tqdm

        total = sum(len(w) for w in wanted.values())
        bar = tqdm(total=total, initial=total - sum(len(g.indices) for g in segments), unit="img",
                   desc=f"scoring {sub.stem}" + (f" on {len(segments)} sets" if named else ""))
        if on_output:
            def on_output(line, _echo=opts.on_output):  # keep the bar below the submission's prints
                with tqdm.external_write_mode(file=sys.stderr):
                    _echo(line)
    try:
        report = run_child(job, sub.name, timeout=opts.timeout, load_timeout=opts.load_timeout,
                           no_network=opts.no_network, on_output=on_output,
                           on_progress=bar.update if bar else None, sandbox_tool=opts.sandbox,
                           label_files=[f for a in asks for f in a.set.label_files])
    finally:
        if bar:
            bar.close()
    for cache, group in shared.items():   # the child's events are claims; the parts are proof
        missing_rows(read_parts(cache, group[0].may_hold)[0], wanted[cache], sub.name, cache)
    return report


def run_metadata(report: ChildReport | None, caches: list[Path]) -> dict:
    """The submission's METADATA: from this run's child, else from the run that filled a cache
    (each cache keeps it in ``metadata.json``, beside the parts folder the child wrote)."""
    if report is not None:
        for cache in caches:
            write_metadata(cache, report)
        return report.metadata
    for cache in caches:
        meta = read_metadata(cache)
        if meta is not None:
            return meta
    return {}


def write_set(ask: Ask, path: Path, name: str) -> tuple[dict, list, dict, float]:
    """Write the predictions parquet ``path`` of ``ask``'s rows from its cache: (metrics,
    per-origin table, the result's ``predictions`` record, images/s)."""
    rows, images_per_s = read_parts(ask.cache, ask.may_hold)
    missing_rows(rows, ask.indices, name, ask.cache)
    top5, prob = rows.take(ask.indices)
    scored = ask.set.rows(ask.indices)
    c1, c5 = correctness(top5, scored.labels)
    table = predictions_table({"id": scored.ids, "origin": scored.origins,
                               "top5": _lists(top5.astype(np.int64)),
                               "top5_prob": _lists(prob.astype(np.float32)),
                               "correct": c1, "correct_top5": c5})
    sha = write_predictions(path, table)
    metrics, origins = check.recompute(table)
    return metrics, origins, {"file": path.name, "sha256": sha}, images_per_s


def _lists(a: np.ndarray):
    """An (n, k) array as an Arrow list column, without a Python object per value."""
    n, k = a.shape
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)),
                                    pa.array(a.reshape(-1)))


def package_version(name: str) -> str:
    """``name.__version__`` as its ``version.py`` states it (torch's ``2.5.1+cu124``, which the
    installed metadata lacks), read without importing the package (seconds for torch)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    folder = spec.submodule_search_locations[0] if spec and spec.submodule_search_locations else ""
    try:
        text = Path(folder, "version.py").read_text()
    except OSError:
        text = ""
    found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
    if found:
        return found[1]
    from importlib.metadata import version

    return version(name)


def environment(device: str, sandbox_used: str, batch_size: int, loader_workers: int) -> dict:
    """What the run ran on and with: versions, device, sandbox, and the loader settings the
    harness asked for (``devices.scoring_loader``'s defaults unless the user gave them)."""
    env = {"python": platform.python_version(), "torch": package_version("torch"),
           "torchvision": package_version("torchvision"), "imagenet_hard": __version__,
           "platform": platform.platform(), "device": device, "device_name": platform.processor()
           or platform.machine(), "sandbox": sandbox_used, "batch_size": batch_size,
           "loader_workers": loader_workers}
    if device.startswith("cuda"):
        import torch  # only a CUDA run imports it here, for the GPU's name

        if torch.cuda.is_available():
            env["device_name"] = torch.cuda.get_device_name(torch.device(device))
            env["tf32"] = "off before the submission loads (worker.run_job)"
    return env


@dataclass
class ScoreRun:
    result: ScoreResult | SuiteResult
    path: Path
    predictions: Path | None = None    # a plain run's predictions (a suite's sit beside it)
    predicted: int = 0                 # rows this run predicted
    scored: int = 0                    # rows in the result (the rest came from earlier runs)

    @property
    def resumed_rows(self) -> int:
        return self.scored - self.predicted


def _scored(s: ScoreSet, limit: int | None) -> np.ndarray:
    return s.scored[:limit] if limit else s.scored


def suite_sets(sets, dataset, split, limit, home):
    """The ``(set, rows, allowed)`` of a suite run (:func:`prepare`'s ``sets``)."""
    return [(s, _scored(s, limit), None) for s in resolve_sets(sets, dataset, split, home)]


def prepare(submission, sets, limit, home, opts: RunOptions, tta):
    """Every run's setup step: the limit, submission and sandbox checked before ``sets`` (a
    callable) opens any data, then the submission's hash and one :class:`Ask` a set. Returns
    (submission path, sandbox used, sha, asks)."""
    if limit is not None and limit <= 0:
        raise InvalidValueError(f"--limit must be positive, got {limit}")
    sub = submission_file(submission)
    sandbox_used = opts.check_sandbox()
    sha = sha256_file(sub)
    asks = [Ask(s, idx, cache_dir(home, sha, s, tta), allowed) for s, idx, allowed in sets()]
    return sub, sandbox_used, sha, asks


def _run(submission, sets, limit, out, home, opts, tta, named, suffix, prepared=None):
    """Score ``sets`` (:func:`prepare`, unless ``prepared`` is its answer already): the asks,
    the child's report, the fields every result records and where the result goes."""
    opts = opts or RunOptions()
    sub, sandbox_used, sha, asks = prepared or prepare(submission, sets, limit, home, opts, tta)
    report = predict(sub, asks, opts, tta, named)
    common = {"submission": {"name": sub.stem, "file": str(sub), "sha256": sha},
              "metadata": run_metadata(report, [a.cache for a in asks]),
              "environment": environment(opts.resolved_device(), sandbox_used,
                                         opts.resolved_batch_size(), opts.resolved_workers()),
              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "tta": None if tta is None else tta.describe()}
    stem = sub.stem if tta is None else f"{sub.stem}.tta-{tta.name}"
    out = Path(out) if out else homes.scores_dir(home) / f"{stem}{suffix}"
    return sub, asks, report, common, out


def score(submission: str | Path, dataset: str | Path | None = None, split: str = "validation",
          limit: int | None = None, out: str | Path | None = None, home=None,
          options: RunOptions | None = None, tta: TtaMode | None = None) -> ScoreRun:
    """Score ``submission`` (a .py file following the contract) on the published dataset and
    write the result JSON and its predictions parquet; a suite of that one set. Resumes from
    finished batches of an earlier, interrupted run. ``tta``
    (:mod:`imagenet_hard.score.tta`) scores crops of each image and aggregates them."""
    def sets():
        s = published_set(dataset, split, home, limit)
        idx = _scored(s, limit)
        return [(s, idx, range(len(idx)))]

    sub, (ask,), report, common, out = _run(submission, sets, limit, out, home, options, tta,
                                            False, ".json")
    s, pred_path = ask.set, predictions_path(out)
    metrics, origins, predictions, speed = write_set(ask, pred_path, sub.name)
    metrics["images_per_s"] = speed
    from ..publish.releases import version_of

    version = version_of(s.source, s.fingerprint)    # a result names the version it was scored on
    result = ScoreResult(**common, metrics=metrics, per_origin=origins, predictions=predictions,
                         dataset={"id": s.source, "split": split, "fingerprint": s.fingerprint,
                                  "rows": len(s), "scored": len(ask.indices), "limit": limit,
                                  **({"version": version} if version else {})})
    result.write(out)
    return ScoreRun(result, out, pred_path, predicted=report.predicted if report else 0,
                    scored=len(ask.indices))


def score_suite(submission: str | Path, sets: list[str] | None = None, dataset=None,
                split: str = "validation", limit: int | None = None, out: str | Path | None = None,
                home=None, options: RunOptions | None = None,
                baseline: str | Path | None = None, tta: TtaMode | None = None, *,
                prepared: tuple | None = None) -> ScoreRun:
    """Score ``submission`` on every set of the suite (``sets``: names, default every built set),
    each under its own protocol, and write one suite result JSON with a predictions parquet per
    set. ``baseline``: a suite result of AlexNet on the same ImageNet-C tables, for mCE.
    ``prepared``: :func:`prepare`'s answer for these arguments, from a caller that has it
    already (rank 0 under torchrun), so that no set's table is read and fingerprinted twice."""
    base = load_baseline(baseline) if baseline else None
    sub, asks, report, common, out = _run(
        submission, lambda: suite_sets(sets, dataset, split, limit, home), limit, out, home,
        options, tta, True, ".suite.json", prepared)
    entries = []
    for ask in asks:
        s = ask.set
        metrics, origins, predictions, _ = write_set(ask, suite_predictions_path(out, s.name),
                                                     sub.name)
        entries.append({"name": s.name, "protocol": s.protocol.name,
                        "dataset": {"id": s.name, "source": s.source, "split": s.split,
                                    "fingerprint": s.fingerprint, "rows": len(s.scored),
                                    "scored": len(ask.indices), "limit": limit},
                        "metrics": metrics, "per_origin": origins, "predictions": predictions})
    result = SuiteResult(**common, sets=entries,
                         imagenet_c=imagenet_c(entries, [a.set for a in asks], base))
    result.write(out)
    return ScoreRun(result, out, predicted=report.predicted if report else 0,
                    scored=sum(len(a.indices) for a in asks))


# -- ImageNet-C aggregates ---------------------------------------------------------------------

def imagenet_c(entries: list[dict], sets: list[ScoreSet], baseline) -> dict | None:
    """ImageNet-C aggregates of the run, mCE when ``baseline`` (a suite result of AlexNet)
    scored every one of these tables (same fingerprints) completely."""
    errors, fps = {}, {}
    for e, s in zip(entries, sets, strict=True):
        if s.corruption is not None:
            errors[s.corruption] = 1.0 - e["metrics"]["accuracy"]
            fps[s.corruption] = s.fingerprint
    if not errors:
        return None
    summary = imagenet_c_summary(errors, baseline_errors(baseline, fps))
    summary["errors"] = {f"{c}/{s}": e for (c, s), e in sorted(errors.items())}
    summary["baseline"] = (None if summary["mce"] is None
                           else {"name": baseline.name, "sha256": baseline.submission["sha256"]})
    return summary


def baseline_errors(baseline: SuiteResult | None, fingerprints: dict) -> dict | None:
    """AlexNet's top-1 errors on the ImageNet-C tables it scored completely whose fingerprints
    are ``fingerprints[(corruption, severity)]``."""
    if baseline is None:
        return None
    out = {}
    for e in baseline.sets:
        key = catalog.parse(e["name"]).variant
        if e["protocol"] != "imagenet-c" or key is None:
            continue
        if (fingerprints.get(key) == e["dataset"]["fingerprint"]
                and e["dataset"]["scored"] == e["dataset"]["rows"]):
            out[key] = 1.0 - e["metrics"]["accuracy"]
    return out


def load_baseline(path: str | Path) -> SuiteResult:
    """The ``--baseline`` suite result; mCE normalises by AlexNet's plain errors, so a baseline
    scored with test-time augmentation is refused."""
    base = load_suite(path)
    if base.tta:
        raise InvalidValueError(f"--baseline {path} was scored with TTA {base.tta['mode']}; mCE "
                                "is relative to AlexNet's plain (one-crop) suite result, so pass "
                                "one scored without --tta")
    return base


#: Aggregates compared between a suite result and its recomputation.
_IMAGENET_C_CLAIMS = ("mean_error_benchmark", "mean_error_held_out", "per_corruption", "errors")


def imagenet_c_problems(result: SuiteResult, sets: list[ScoreSet],
                        baseline: SuiteResult | None) -> tuple[list[str], list[str]]:
    """(problems, notes) of the result's ImageNet-C aggregates against a recomputation."""
    again = imagenet_c(result.sets, sets, baseline)
    claimed = result.imagenet_c
    if (again is None) != (claimed is None):
        return ["imagenet_c: the aggregates do not match the sets listed"], []
    if again is None:
        return [], []
    problems = [f"imagenet_c.{k}: claimed {claimed.get(k)!r:.80}, the sets give {again[k]!r:.80}"
                for k in _IMAGENET_C_CLAIMS if not check.agrees(claimed.get(k), again[k])]
    notes = []
    if baseline is None:
        if claimed.get("mce") is not None:
            notes.append("mCE not re-checked: pass --baseline with the AlexNet suite result")
    elif not check.agrees(claimed.get("mce"), again["mce"]):
        problems.append(f"imagenet_c.mce: claimed {claimed.get('mce')}, the baseline gives "
                        f"{again['mce']}")
    return problems, notes


# -- verify ------------------------------------------------------------------------------------

@dataclass
class VerifyReport:
    """What ``verify`` found for one set (thresholds below). The probability check tells a TTA
    result from a plain one when their rankings agree; ``PROB_TOL`` leaves room for another
    device or precision (fp16 against fp32 moves a probability by about 1e-3)."""

    n: int
    top1_agreement: float
    top5_set_agreement: float
    max_top1_prob_diff: float
    problems: list[str]
    top1_prob_agreement: float = 1.0
    MIN_TOP1: float = 0.99
    MIN_TOP5_SET: float = 0.95
    MIN_PROB: float = 0.95
    PROB_TOL: float = 0.02

    @property
    def passed(self) -> bool:
        return (not self.problems and self.top1_agreement >= self.MIN_TOP1
                and self.top5_set_agreement >= self.MIN_TOP5_SET
                and self.top1_prob_agreement >= self.MIN_PROB)

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{verdict}: re-ran {self.n} sampled rows; top-1 agrees on "
                 f"{self.top1_agreement:.1%} (need ≥ {self.MIN_TOP1:.0%}), top-5 sets on "
                 f"{self.top5_set_agreement:.1%} (need ≥ {self.MIN_TOP5_SET:.0%}), top-1 "
                 f"probability within {self.PROB_TOL:g} on {self.top1_prob_agreement:.1%} (need "
                 f"≥ {self.MIN_PROB:.0%}); largest top-1 probability difference "
                 f"{self.max_top1_prob_diff:.2e}"]
        lines += [f"  problem: {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass
class SuiteVerifyReport:
    sets: dict[str, VerifyReport]
    problems: list[str]           # suite-wide (ImageNet-C aggregates)
    notes: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems and all(r.passed for r in self.sets.values())

    def summary(self) -> str:
        lines = [f"{'PASS' if self.passed else 'FAIL'}: {len(self.sets)} sets re-checked"]
        for name, rep in self.sets.items():
            lines.append(f"  {name}: " + rep.summary().replace("\n", "\n  "))
        lines += [f"  problem: {p}" for p in self.problems] + [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _submission_of(result, submission, opts: RunOptions) -> Path:
    """The file to re-run (checked by the setup step of a run): refused unless it is the one
    the result says was scored."""
    sub, _, sha, _ = prepare(submission or result.submission["file"], lambda: [], None, None,
                             opts, None)
    if sha != result.submission["sha256"]:
        raise InvalidValueError(f"{sub} is not the file that was scored (SHA-256 differs from "
                                f"{result.submission['sha256'][:12]}…); pass --submission with "
                                "the original file")
    return sub


def verify(result_path: str | Path, sample: int = 200, seed: int = 0,
           submission: str | Path | None = None, dataset: str | Path | None = None,
           home=None, options: RunOptions | None = None) -> VerifyReport:
    """Re-run the submission of a result on a seeded random subset of its rows and compare."""
    opts = options or RunOptions()
    result = load_result(result_path)
    sub = _submission_of(result, submission, opts)
    s = published_set(dataset or result.dataset["id"], result.dataset["split"], home)
    return recheck(result_path, [(s, result)], sub, opts, sample, seed, named=False)[s.name]


def verify_suite(result_path: str | Path, sample: int = 200, seed: int = 0,
                 submission: str | Path | None = None, dataset=None, home=None,
                 options: RunOptions | None = None,
                 baseline: str | Path | None = None) -> SuiteVerifyReport:
    """Re-check every set of a suite result (numbers, labels, ImageNet-C aggregates) and re-run
    ``sample`` random rows of each, all sets in one child, as scoring did."""
    opts = options or RunOptions()
    result = load_suite(result_path)
    base = load_baseline(baseline) if baseline else None
    sub = _submission_of(result, submission, opts)
    names = [e["name"] for e in result.sets]
    if dataset is None and IMAGENET_HARD_SET in names:  # where it was scored, as `verify` does
        dataset = result.entry(IMAGENET_HARD_SET)["dataset"].get("source")
    sets = resolve_sets(names, dataset, home=home)
    reports = recheck(result_path, [(s, result.set_result(k)) for k, s in enumerate(sets)], sub,
                      opts, sample, seed)
    return SuiteVerifyReport(reports, *imagenet_c_problems(result, sets, base))


def recheck(result_path: str | Path, pairs: list[tuple[ScoreSet, ScoreResult]], sub: Path,
            opts: RunOptions, sample: int, seed: int, named: bool = True) -> dict[str, VerifyReport]:
    """Each ``(set, its result)`` re-checked: the numbers against the predictions and the set's
    labels, and ``sample`` seeded random rows re-run afresh (every set in one child, under the
    test-time augmentation the result claims) and compared with the predictions."""
    rng = np.random.default_rng(seed)
    checks = []
    for s, one in pairs:
        if s.fingerprint != one.dataset["fingerprint"]:
            what = f"set {s.name} here" if named else f"dataset {s.source}"
            raise InvalidValueError(f"{what} has fingerprint {s.fingerprint[:12]}…, the result "
                                    f"was scored on {one.dataset['fingerprint'][:12]}…")
        table = read_predictions(result_path, one)
        problems = check.consistency_problems(one, table, s.rows())
        picked = sorted(rng.choice(table.num_rows, size=min(sample, table.num_rows),
                                   replace=False).tolist())
        pos = pc.index_in(table.column("id").take(pa.array(picked, pa.int64())),
                          value_set=s.all.ids)
        if pos.null_count:
            raise InvalidValueError(f"{result_path}: prediction ids that are not in "
                                    f"{'set ' + s.name if named else s.source}")
        checks.append((s, table, picked, pos.to_pylist(), problems))
    claimed = pairs[0][1].tta
    scratch = Path(tempfile.mkdtemp(prefix="imhard-verify-"))
    try:
        asks = [Ask(c[0], c[3], scratch / f"set-{k:04d}", allowed=set(c[3]))
                for k, c in enumerate(checks)]
        predict(sub, asks, opts, TtaMode.from_dict(claimed) if claimed else None, named)
        reports = {}
        for ask, (s, table, picked, indices, problems) in zip(asks, checks, strict=True):
            if named and not indices:
                raise SubmissionError(f"nothing to verify in set {s.name}: no prediction rows")
            rows, _ = read_parts(ask.cache, ask.may_hold)
            reports[s.name] = compare(table, picked, indices, rows, problems)
        return reports
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def compare(table, picked, indices, rows, problems) -> VerifyReport:
    """Re-run answers ``rows`` (by row index) against the predictions table's rows ``picked``."""
    n = len(indices)
    if n == 0:
        raise SubmissionError("nothing to verify: the result has no prediction rows")
    sub = table.take(pa.array(picked, pa.int64()))
    old5, oldp = sub.column("top5").to_pylist(), sub.column("top5_prob").to_pylist()
    new5, newp = rows.take(indices)
    top1 = sum(o[0] == int(t[0]) for o, t in zip(old5, new5, strict=True))
    sets = sum(set(o) == set(t.tolist()) for o, t in zip(old5, new5, strict=True))
    diffs = [abs(o[0] - float(p[0])) for o, p in zip(oldp, newp, strict=True)]
    close = sum(d <= VerifyReport.PROB_TOL for d in diffs)
    return VerifyReport(n=n, top1_agreement=top1 / n, top5_set_agreement=sets / n,
                        max_top1_prob_diff=max(diffs), problems=problems,
                        top1_prob_agreement=close / n)
