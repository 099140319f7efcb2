"""``score_suite``: one submission over many sets, in one sandboxed child.

One child for the whole suite, not one per set: the submission is imported and its model loaded
once (a CLIP ViT-L/14 takes tens of seconds to load; a full suite has over a hundred sets with
ImageNet-C), and the child moves from set to set with the model in memory. The child writes each
set's batches into that set's own cache folder, ``<home>/scores/cache/<submission>-<images>-
<protocol key>/``, named by the submission's SHA-256, the content of the set's images and what the
protocol asks of the child (classes ranked among, border crop), plus ``-tta-<mode key>`` under
test-time augmentation, so an interrupted suite resumes where it stopped, sets with the same
images and the same ask (ImageNet val and ReaL) share their predictions, and a TTA suite never
reads a plain suite's predictions (nor one of another mode or crop cover).

Under ``tta`` (:mod:`imagenet_hard.score.tta`) the child scores each image's crops and aggregates
their softmax outputs over all 1000 classes; each set's protocol then applies to that aggregate
as it would to one output (ranked within its classes, its border cropped before the crops are
cut), so every set keeps its own protocol.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from ... import home as homes
from ...errors import InvalidValueError
from ...files import sha256_file
from .. import check
from ..harness import (
    RunOptions,
    environment,
    missing_rows,
    parts_dir,
    prepare_cache,
    read_metadata,
    read_parts,
    submission_file,
    write_metadata,
)
from ..metrics import correctness
from ..protocols import imagenet_c_summary
from ..result import write_predictions
from ..runner import ChildJob, ChildReport, Segment, run_child
from ..tta import TtaMode, child_batch
from .result import SuiteResult, load_suite, suite_predictions_path
from .sets import SuiteSet, resolve_sets


@dataclass
class SuiteRun:
    result: SuiteResult
    path: Path
    predicted: int = 0          # rows this run predicted
    scored: int = 0             # rows in the result (the rest came from earlier runs' caches)


def cache_dir(home, sha: str, s: SuiteSet, tta: TtaMode | None = None) -> Path:
    tail = f"-tta-{tta.key()}" if tta is not None else ""
    return homes.scores_dir(home) / "cache" / f"{sha[:16]}-{s.cache_key}{tail}"


def _indices(s: SuiteSet, limit: int | None) -> list[int]:
    scored = s.scored
    return scored[:limit] if limit else scored


def _segment(sets: list[SuiteSet], todo: list[int], cache: Path) -> Segment:
    s = sets[0]
    arrow, read_only = s.images()
    return Segment(arrow, todo, str(parts_dir(cache)), name="+".join(x.name for x in sets),
                   read_only=read_only, border=s.protocol.border,
                   classes=list(s.classes) if s.classes is not None else None)


def predict_sets(sub: Path, plan: list[tuple[SuiteSet, list[int], Path]], opts: RunOptions,
                 job_dir: Path | None = None, tta: TtaMode | None = None) -> ChildReport | None:
    """Predict, in one child, every row of each ``(set, indices, cache)`` missing from its cache;
    under ``tta`` the batch size counts crops per forward pass, as in a single-set run. Every
    asked row has a valid part in its cache when this returns. ``job_dir`` is not used (the
    job file lives in a private folder of the runner's)."""
    shared: dict[Path, tuple[list[SuiteSet], set[int]]] = {}
    for s, indices, cache in plan:  # sets with one cache (same images, same ask) run once
        sets, wanted = shared.setdefault(cache, ([], set()))
        sets.append(s)
        wanted.update(indices)
    segments = []
    for cache, (sets, wanted) in shared.items():
        prepare_cache(cache)
        done, _ = read_parts(cache, _rows_of(sets[0]))
        todo = sorted(wanted - set(done))
        if todo:
            segments.append(_segment(sets, todo, cache))
    if not segments:
        return None
    batch, spec = child_batch(tta, opts.batch_size)
    job = ChildJob(submission=str(sub), device=opts.resolved_device(), batch_size=batch,
                   workers=opts.resolved_workers(), memory_limit=opts.memory_limit,
                   segments=segments, tta=spec)
    bar = None
    if opts.progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(s.indices) for s in segments), unit="img", desc=f"scoring {sub.stem} on "
                   f"{len(segments)} sets")
    try:
        report = run_child(job, sub.name, timeout=opts.timeout, load_timeout=opts.load_timeout,
                           no_network=opts.no_network, on_output=opts.on_output,
                           on_progress=bar.update if bar else None, sandbox_tool=opts.sandbox,
                           label_files=[f for s, _, _ in plan for f in s.label_files])
    finally:
        if bar:
            bar.close()
    for cache, (sets, wanted) in shared.items():   # the child's events are claims, parts proof
        rows, _ = read_parts(cache, _rows_of(sets[0]))
        missing_rows(rows, sorted(wanted), sub.name, cache)
    return report


def _rows_of(s: SuiteSet) -> range:
    """Rows a part in ``s``'s cache may hold: any row of its images (the sets sharing a cache
    share the images; another run may have scored other rows of them)."""
    return range(len(s.ids))


def _set_entry(s: SuiteSet, indices: list[int], rows: dict, out: Path, limit) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    top5 = np.stack([rows[i][0] for i in indices]).astype(np.int64)
    prob = np.stack([rows[i][1] for i in indices]).astype(np.float32)
    scored = s.rows(indices)
    c1, c5 = correctness(top5, scored.labels)
    pred = suite_predictions_path(out, s.name)
    sha = write_predictions(pred, {
        "id": scored.ids, "origin": scored.origins, "top5": top5.tolist(),
        "top5_prob": prob.tolist(), "correct": c1.tolist(), "correct_top5": c5.tolist()})
    metrics, origins = check.recompute(pq.read_table(pred))
    return {"name": s.name, "protocol": s.protocol.name,
            "dataset": {"id": s.name, "source": s.source, "split": s.split,
                        "fingerprint": s.fingerprint, "rows": len(s.scored),
                        "scored": len(indices), "limit": limit},
            "metrics": metrics, "per_origin": origins,
            "predictions": {"file": pred.name, "sha256": sha}}


def _imagenet_c(entries: list[dict], sets: list[SuiteSet], baseline) -> dict | None:
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
        parts = e["name"].split("/")
        if e["protocol"] != "imagenet-c" or len(parts) != 3 or not parts[2].isdigit():
            continue
        key = (parts[1], int(parts[2]))
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


def score_suite(submission: str | Path, sets: list[str] | None = None, dataset=None,
                split: str = "validation", limit: int | None = None, out: str | Path | None = None,
                home=None, options: RunOptions | None = None,
                baseline: str | Path | None = None, tta: TtaMode | None = None) -> SuiteRun:
    """Score ``submission`` on every set of the suite (``sets``: names, default every built set)
    and write one suite result JSON with a predictions parquet per set. ``baseline``: a suite
    result of AlexNet on the same ImageNet-C tables, for mCE. ``tta``: score every set with that
    test-time augmentation, each under its own protocol."""
    opts = options or RunOptions()
    if limit is not None and limit <= 0:
        raise InvalidValueError(f"--limit must be positive, got {limit}")
    sub = submission_file(submission)
    base = load_baseline(baseline) if baseline else None
    sandbox_used = opts.check_sandbox()
    sha = sha256_file(sub)
    chosen = resolve_sets(sets, dataset, split, home)
    plan = [(s, _indices(s, limit), cache_dir(home, sha, s, tta)) for s in chosen]
    report = predict_sets(sub, plan, opts, tta=tta)
    metadata = _metadata(report, [c for _, _, c in plan])
    stem = sub.stem if tta is None else f"{sub.stem}.tta-{tta.name}"
    out = Path(out) if out else homes.scores_dir(home) / f"{stem}.suite.json"
    entries = []
    for s, indices, cache in plan:
        rows, _ = read_parts(cache, _rows_of(s))
        missing_rows(rows, indices, sub.name, cache)
        entries.append(_set_entry(s, indices, rows, out, limit))
    result = SuiteResult(
        submission={"name": sub.stem, "file": str(sub), "sha256": sha}, sets=entries,
        environment=environment(opts.resolved_device(), sandbox_used),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        metadata=metadata, imagenet_c=_imagenet_c(entries, chosen, base),
        tta=None if tta is None else tta.describe())
    result.write(out)
    return SuiteRun(result, out, predicted=report.predicted if report else 0,
                    scored=sum(len(i) for _, i, _ in plan))


def _metadata(report: ChildReport | None, caches: list[Path]) -> dict:
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
