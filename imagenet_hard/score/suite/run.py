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

from dataclasses import dataclass
from pathlib import Path

from ... import home as homes
from ...errors import InvalidValueError
from ...files import sha256_file
from ..harness import (
    Ask,
    RunOptions,
    cache_dir,
    result_stem,
    run,
    submission_file,
    write_set,
)
from ..protocols import imagenet_c_summary
from ..tta import TtaMode
from .result import SuiteResult, load_suite, suite_predictions_path
from .sets import SuiteSet, resolve_sets


@dataclass
class SuiteRun:
    result: SuiteResult
    path: Path
    predicted: int = 0          # rows this run predicted
    scored: int = 0             # rows in the result (the rest came from earlier runs' caches)


def _indices(s: SuiteSet, limit: int | None) -> list[int]:
    scored = s.scored
    return scored[:limit] if limit else scored


def _set_entry(ask: Ask, out: Path, limit, name: str) -> dict:
    s = ask.set
    metrics, origins, predictions, _ = write_set(ask, suite_predictions_path(out, s.name), name)
    return {"name": s.name, "protocol": s.protocol.name,
            "dataset": {"id": s.name, "source": s.source, "split": s.split,
                        "fingerprint": s.fingerprint, "rows": len(s.scored),
                        "scored": len(ask.indices), "limit": limit},
            "metrics": metrics, "per_origin": origins, "predictions": predictions}


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
    asks = [Ask(s, _indices(s, limit), cache_dir(home, sha, s, tta)) for s in chosen]
    report, common = run(sub, sha, asks, opts, tta, sandbox_used)
    out = Path(out) if out else homes.scores_dir(home) / f"{result_stem(sub, tta)}.suite.json"
    entries = [_set_entry(ask, out, limit, sub.name) for ask in asks]
    result = SuiteResult(**common, sets=entries, imagenet_c=_imagenet_c(entries, chosen, base))
    result.write(out)
    return SuiteRun(result, out, predicted=report.predicted if report else 0,
                    scored=sum(len(a.indices) for a in asks))

