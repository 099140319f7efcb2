"""``score`` and ``verify``: run a submission over a dataset in a child process and record the result.

Partial predictions live in ``<home>/scores/cache/<submission sha>-<fingerprint>-<split>-<limit>/``
(``…-tta-<mode>-<hash>`` under test-time augmentation) as one file per finished batch, so a rerun
after a crash, a timeout or Ctrl-C predicts only the rows still missing.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from .. import home as homes
from ..errors import InvalidValueError, MissingFileError, SubmissionError
from ..files import sha256_file, write_json_atomic
from . import check
from .dataset import ScoreDataset, image_files, open_dataset
from .metrics import correctness
from .result import ScoreResult, load_result, predictions_path, read_predictions, write_predictions
from .runner import ChildJob, ChildReport, new_scratch_dir, run_child
from .sandbox import choose, default_memory_limit
from .tta import TtaMode, child_batch


@dataclass
class RunOptions:
    """How to run a submission (everything except what and on which data)."""

    device: str | None = None
    batch_size: int = 32
    workers: int | None = None
    timeout: float = 600.0
    load_timeout: float = 1800.0
    no_network: bool = False
    sandbox: str = "auto"           # auto | bwrap | unshare | none (unconfined: trusted files only)
    memory_limit: int | None = field(default_factory=default_memory_limit)
    progress: bool = False
    on_output: Callable[[str], None] | None = None

    def check_sandbox(self) -> str:
        """Which sandbox will run the submission; fails early (before loading any data) with
        what to install when none works here."""
        return choose(self.sandbox, self.no_network)

    def resolved_device(self) -> str:
        from ..devices import resolve_device

        return str(resolve_device(self.device))

    def resolved_workers(self) -> int:
        import os

        return self.workers if self.workers is not None else min(4, max(0, (os.cpu_count() or 1) - 1))


def submission_file(path: str | Path) -> Path:
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise MissingFileError(f"submission {path} does not exist")
    if path.suffix != ".py":
        raise InvalidValueError(f"submission {path} must be a Python file (.py)")
    return path


def read_parts(cache: Path) -> tuple[dict, float]:
    """Finished rows in a cache folder (row index → (top5, top5_prob)) and their images/s."""
    rows: dict = {}
    seconds, n = 0.0, 0
    for part in sorted(cache.glob("part-*.npz")):
        if part.is_symlink():  # the child writes this folder: never follow a link it made
            raise SubmissionError(f"{part} is a symbolic link, not a batch the harness wrote; "
                                  f"delete {cache} and score again")
        with np.load(part) as z:
            for i, t5, p5 in zip(z["idx"], z["top5"], z["top5_prob"], strict=True):
                rows[int(i)] = (t5, p5)
            seconds += float(z["seconds"])
            n += len(z["idx"])
    return rows, (n / seconds if seconds > 0 else 0.0)


def predict_rows(sub: Path, sds: ScoreDataset, indices: list[int], cache: Path,
                 opts: RunOptions, home=None, tta: TtaMode | None = None) -> ChildReport | None:
    """Predict every row of ``indices`` missing from ``cache`` in one child process. Under
    ``tta`` the batch size counts crops per forward pass; a batch holds as many images as fit."""
    cache.mkdir(parents=True, exist_ok=True)
    done, _ = read_parts(cache)
    todo = [i for i in indices if i not in done]
    if not todo:
        return None
    batch, spec = child_batch(tta, opts.batch_size)
    job = ChildJob(submission=str(sub), device=opts.resolved_device(), batch_size=batch,
                   workers=opts.resolved_workers(), arrow_files=image_files(sds, home), indices=todo,
                   out_dir=str(cache), memory_limit=opts.memory_limit, tta=spec)
    bar = None
    if opts.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(indices), initial=len(indices) - len(todo), unit="img",
                   desc=f"scoring {sub.stem}")
    on_output = opts.on_output
    if bar and on_output:
        def on_output(line, _echo=opts.on_output):  # keep the bar below the submission's prints
            with tqdm.external_write_mode(file=sys.stderr):
                _echo(line)
    try:
        return run_child(job, sub.name, timeout=opts.timeout, load_timeout=opts.load_timeout,
                         no_network=opts.no_network, on_output=on_output,
                         on_progress=bar.update if bar else None, sandbox_tool=opts.sandbox,
                         label_files=sds.label_files())
    finally:
        if bar:
            bar.close()


def environment(device: str, sandbox_used: str) -> dict:
    import torch
    import torchvision

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "torchvision": torchvision.__version__, "imagenet_hard": __version__,
           "platform": platform.platform(), "device": device, "device_name": platform.processor()
           or platform.machine(), "sandbox": sandbox_used}
    if device.startswith("cuda") and torch.cuda.is_available():
        env["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return env


@dataclass
class ScoreRun:
    result: ScoreResult
    path: Path
    predictions: Path
    resumed_rows: int = 0
    notes: list[str] = field(default_factory=list)


def _cache_dir(home, sha: str, sds: ScoreDataset, limit: int | None,
               tta: TtaMode | None = None) -> Path:
    tail = f"-tta-{tta.key()}" if tta is not None else ""
    return (homes.data_home(home) / "scores" / "cache"
            / f"{sha[:16]}-{sds.fingerprint[:16]}-{sds.split}-{limit or 'all'}{tail}")


def _predictions_table(sds: ScoreDataset, indices, rows) -> dict:
    top5 = np.stack([rows[i][0] for i in indices]).astype(np.int64)
    prob = np.stack([rows[i][1] for i in indices]).astype(np.float32)
    c1, c5 = correctness(top5, [sds.labels[i] for i in indices])
    return {"id": [sds.ids[i] for i in indices], "origin": [sds.origins[i] for i in indices],
            "top5": top5.tolist(), "top5_prob": prob.tolist(), "correct": c1.tolist(),
            "correct_top5": c5.tolist()}


def score(submission: str | Path, dataset: str | Path | None = None, split: str = "validation",
          limit: int | None = None, out: str | Path | None = None, home=None,
          options: RunOptions | None = None, tta: TtaMode | None = None) -> ScoreRun:
    """Score ``submission`` (a .py file following the contract) and write the result JSON and
    its predictions parquet. Resumes from finished batches of an earlier, interrupted run.
    ``tta`` (:mod:`imagenet_hard.score.tta`) scores crops of each image and aggregates them."""
    opts = options or RunOptions()
    sub = submission_file(submission)
    sandbox_used = opts.check_sandbox()
    sha = sha256_file(sub)
    sds = open_dataset(dataset, split, home)
    if limit is not None and limit <= 0:
        raise InvalidValueError(f"--limit must be positive, got {limit}")
    indices = list(range(min(limit, len(sds)) if limit else len(sds)))
    cache = _cache_dir(home, sha, sds, limit, tta)
    report = predict_rows(sub, sds, indices, cache, opts, home, tta)
    meta_file = cache / "metadata.json"
    if report is not None:
        write_json_atomic(meta_file, {"metadata": report.metadata, "form": report.form})
    saved = (json.loads(meta_file.read_text()) if meta_file.is_file() and not meta_file.is_symlink()
             else {"metadata": {}})
    rows, images_per_s = read_parts(cache)
    stem = sub.stem if tta is None else f"{sub.stem}.tta-{tta.name}"
    out = Path(out) if out else homes.data_home(home) / "scores" / f"{stem}.json"
    pred_path = predictions_path(out)
    pred_sha = write_predictions(pred_path, _predictions_table(sds, indices, rows))
    import pyarrow.parquet as pq

    metrics, origins = check.recompute(pq.read_table(pred_path))
    metrics["images_per_s"] = images_per_s
    result = ScoreResult(
        submission={"name": sub.stem, "file": str(sub), "sha256": sha},
        metadata=saved["metadata"],
        dataset={"id": sds.id, "split": split, "fingerprint": sds.fingerprint, "rows": len(sds),
                 "scored": len(indices), "limit": limit},
        metrics=metrics, per_origin=origins, environment=environment(opts.resolved_device(), sandbox_used),
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        predictions={"file": pred_path.name, "sha256": pred_sha},
        tta=None if tta is None else tta.describe(),
    )
    result.write(out)
    resumed = len(indices) - (report.done if report else 0)
    return ScoreRun(result, out, pred_path, resumed_rows=resumed)


@dataclass
class VerifyReport:
    """What ``verify`` found. Passes when top-1 agrees on ≥ 99% of the sampled rows, the top-5
    *sets* agree on ≥ 95%, the top-1 probability is within ``PROB_TOL`` on ≥ 95%, and the
    result's numbers match its predictions and the labels. The probability check is what tells
    a TTA result from a plain one (or one TTA mode from another) when their rankings agree: the
    claimed mode must reproduce the recorded probabilities, not only the classes. ``PROB_TOL``
    leaves room for another device or precision (fp16 against fp32 moves a probability by
    about 1e-3)."""

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


def check_scored_file(sub: Path, sha256: str) -> None:
    """Refuse to verify with a file other than the one the result says was scored."""
    if sha256_file(sub) != sha256:
        raise InvalidValueError(f"{sub} is not the file that was scored (SHA-256 differs from "
                                f"{sha256[:12]}…); pass --submission with the original file")


def verify(result_path: str | Path, sample: int = 200, seed: int = 0,
           submission: str | Path | None = None, dataset: str | Path | None = None,
           home=None, options: RunOptions | None = None) -> VerifyReport:
    """Re-run the submission of a result on a seeded random subset of its rows and compare."""
    opts = options or RunOptions()
    result = load_result(result_path)
    table = read_predictions(result_path, result)
    sub = submission_file(submission or result.submission["file"])
    opts.check_sandbox()
    check_scored_file(sub, result.submission["sha256"])
    sds = open_dataset(dataset or result.dataset["id"], result.dataset["split"], home)
    if sds.fingerprint != result.dataset["fingerprint"]:
        raise InvalidValueError(f"dataset {sds.id} has fingerprint {sds.fingerprint[:12]}…, the "
                                f"result was scored on {result.dataset['fingerprint'][:12]}…")
    problems = check.consistency_problems(result, table, sds)
    row_of = {rid: i for i, rid in enumerate(sds.ids)}
    ids = table.column("id").to_pylist()
    rng = np.random.default_rng(seed)
    picked = sorted(rng.choice(len(ids), size=min(sample, len(ids)), replace=False).tolist())
    indices = [row_of[ids[k]] for k in picked]
    scratch = new_scratch_dir("imhard-verify-")
    try:
        tta = TtaMode.from_dict(result.tta) if result.tta else None
        predict_rows(sub, sds, indices, scratch, opts, home, tta)
        rows, _ = read_parts(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return compare(table, picked, indices, rows, problems)


def compare(table, picked, indices, rows, problems) -> VerifyReport:
    """Re-run answers ``rows`` (by row index) against the predictions table's rows ``picked``."""
    old5 = table.column("top5").to_pylist()
    oldp = table.column("top5_prob").to_pylist()
    top1 = [old5[k][0] == int(rows[i][0][0]) for k, i in zip(picked, indices, strict=True)]
    sets = [set(old5[k]) == set(rows[i][0].tolist()) for k, i in zip(picked, indices, strict=True)]
    diffs = [abs(oldp[k][0] - float(rows[i][1][0])) for k, i in zip(picked, indices, strict=True)]
    n = len(indices)
    if n == 0:
        raise SubmissionError("nothing to verify: the result has no prediction rows")
    close = sum(d <= VerifyReport.PROB_TOL for d in diffs)
    return VerifyReport(n=n, top1_agreement=sum(top1) / n, top5_set_agreement=sum(sets) / n,
                        max_top1_prob_diff=max(diffs), problems=problems,
                        top1_prob_agreement=close / n)
