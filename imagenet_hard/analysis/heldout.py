"""Held-out check: is what a mining run kept hard for models that never judged it?

A run's candidates are hard for its judge by construction. The evidence that the hardness
transfers is the accuracy of *other* models on them, beside their accuracy on a same-size,
seeded random sample of the run's non-candidates (images the judge got right on some crop).
Each model scores every image the benchmark's way: the standard 1-crop (resize 256 bicubic,
centre crop 224, :func:`imagenet_hard.zoom.standard_crop`), top-1 within the image's judged
label space (the run's own ObjectNet rule), correct when it is in the judged label set. Accuracy
comes with a two-sided interval: Wilson's score interval or the exact (Clopper–Pearson) one from
``scipy.stats.binomtest``.

A model is held out when it differs from the run's judge; the judge's own weights at another
precision are allowed and marked ``same_weights_as_judge`` (the report says so: that is a
robustness check, not independent evidence).

Files, in ``<run folder>/heldout/`` (this module is the one place that names them):
``heldout.json`` (:class:`HeldOutReport`), ``heldout.md``, ``heldout.png`` and
``predictions.parquet`` (one row per model and image). Torch is imported when models score.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa

from ..errors import ImHardError, InvalidValueError
from ..files import atomic_path, write_bytes_atomic, write_json_atomic
from ..models.preprocess import PRECISIONS

HELDOUT_DIR = "heldout"
REPORT_JSON = "heldout.json"
REPORT_MD = "heldout.md"
PLOT = "heldout.png"
PREDICTIONS = "predictions.parquet"
SCHEMA_VERSION = 1
INTERVALS = ("wilson", "exact")
GROUPS = ("candidates", "others")
BATCH = 32

PREDICTION_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("group", pa.string()),        # candidates | others
    ("model", pa.string()),
    ("precision", pa.string()),
    ("top1", pa.int64()),          # within the judged label space
    ("confidence", pa.float32()),  # its softmax probability within the space
    ("correct", pa.bool_()),
])


def interval(k: int, n: int, method: str = "wilson", confidence: float = 0.95
             ) -> tuple[float, float]:
    """Two-sided ``confidence`` interval of a proportion ``k / n`` (``(0, 1)`` when n is 0)."""
    if method not in INTERVALS:
        raise InvalidValueError(f"interval must be one of {', '.join(INTERVALS)}, got {method!r}")
    if not 0 < confidence < 1:
        raise InvalidValueError(f"confidence must be between 0 and 1, got {confidence}")
    if n == 0:
        return 0.0, 1.0
    if method == "wilson":
        from scipy.stats import norm

        from ..score.metrics import wilson_interval

        return wilson_interval(k, n, z=float(norm.ppf(0.5 + confidence / 2)))
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Accuracy:
    """``correct`` of ``n`` images and the interval of the proportion."""

    n: int
    correct: int
    low: float
    high: float

    def __post_init__(self):
        if not (0 <= self.correct <= self.n):
            raise InvalidValueError(f"correct must be between 0 and n={self.n}, got {self.correct}")
        if not (0.0 <= self.low <= self.high <= 1.0):
            raise InvalidValueError(f"interval must satisfy 0 ≤ low ≤ high ≤ 1, got "
                                    f"({self.low}, {self.high})")

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0


@dataclass(frozen=True)
class ModelResult:
    """One held-out model's accuracy on the candidates and on the sampled non-candidates."""

    model: str
    precision: str
    same_weights_as_judge: bool
    candidates: Accuracy
    others: Accuracy

    @property
    def gap(self) -> float:
        """Accuracy on the non-candidates minus on the candidates (positive: hardness transfers)."""
        return self.others.accuracy - self.candidates.accuracy


@dataclass(frozen=True)
class HeldOutReport:
    """``heldout.json``: the run, the judge, how the samples were drawn, and each model's numbers."""

    run: str
    judge: str
    judge_precision: str | None
    candidates_total: int
    others_total: int
    seed: int
    interval: str
    confidence: float
    models: tuple[ModelResult, ...]
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        data = asdict(self)
        data["models"] = [{**asdict(m), "candidates": {**asdict(m.candidates),
                                                        "accuracy": m.candidates.accuracy},
                           "others": {**asdict(m.others), "accuracy": m.others.accuracy},
                           "gap": m.gap} for m in self.models]
        return data

    @classmethod
    def from_json(cls, data: dict, path: Path) -> HeldOutReport:
        try:
            if data.get("schema_version") != SCHEMA_VERSION:
                raise InvalidValueError(f"schema_version must be {SCHEMA_VERSION}")
            models = tuple(ModelResult(
                model=m["model"], precision=m["precision"],
                same_weights_as_judge=bool(m["same_weights_as_judge"]),
                candidates=_accuracy(m["candidates"]), others=_accuracy(m["others"]))
                for m in data["models"])
            return cls(**{**{k: data[k] for k in (
                "run", "judge", "judge_precision", "candidates_total", "others_total", "seed",
                "interval", "confidence")}, "models": models})
        except (KeyError, TypeError, AttributeError, InvalidValueError) as exc:
            raise InvalidValueError(f"{path} is not a held-out report this imagenet-hard "
                                    f"writes ({exc}); run `imhard analyze heldout` again") from None

    def summary(self) -> str:
        lines = [f"held-out check of run {self.run!r} (judge {self.judge}): "
                 f"{_n(self.models, 'candidates')} candidates, {_n(self.models, 'others')} "
                 f"non-candidates sampled (seed {self.seed}), {self.interval} "
                 f"{self.confidence:.0%} intervals"]
        for m in self.models:
            same = " (the judge's weights)" if m.same_weights_as_judge else ""
            lines.append(f"  {m.model} {m.precision}{same}: candidates {_acc(m.candidates)}, "
                         f"non-candidates {_acc(m.others)}, gap {m.gap * 100:+.1f} points")
        return "\n".join(lines)


def _n(models, group: str) -> int:
    return getattr(models[0], group).n if models else 0


def _accuracy(d: dict) -> Accuracy:
    return Accuracy(int(d["n"]), int(d["correct"]), float(d["low"]), float(d["high"]))


def _acc(a: Accuracy) -> str:
    return f"{a.accuracy:.1%} [{a.low:.1%}, {a.high:.1%}] ({a.correct}/{a.n})"


# -- checking the request (no torch) --------------------------------------------------------


def parse_models(models) -> list[str]:
    """``x,y`` (or a list) as model specs the way judges name them; an unknown one fails."""
    from ..judges import check_judge

    names = [m.strip() for m in (models.split(",") if isinstance(models, str) else models)]
    names = [m for m in names if m]
    if not names:
        raise InvalidValueError("--models needs at least one model spec (see `imhard models`)")
    specs = [check_judge(m) for m in names]
    if len(set(specs)) != len(specs):
        raise InvalidValueError(f"--models lists a model twice: {', '.join(names)}")
    return specs


def run_judges(record) -> list[tuple[str, str | None]]:
    """(judge spec, precision) of every judge that mined a run (ensemble runs list several)."""
    judges = getattr(record, "judges", None)
    if judges:  # recorded as SPEC@PRECISION
        return [(j.rsplit("@", 1)[0], p) for j, p in zip(judges, record.precisions, strict=True)]
    return [(record.judge, record.precision)]


def check_held_out(specs: list[str], precision: str, record) -> list[bool]:
    """For each model, whether it shares the judge's weights; a model that *is* a judge (same
    spec, same precision) is refused."""
    if precision not in PRECISIONS:
        raise InvalidValueError(f"--precision must be one of {', '.join(PRECISIONS)}, "
                                f"got {precision!r}")
    judges = run_judges(record)
    same = []
    for spec in specs:
        for judge, judged_at in judges:
            if spec == judge and precision == judged_at:
                raise InvalidValueError(
                    f"{spec} at {precision} judged this run, so it is not held out; name "
                    "another model, or another --precision to compare the same weights")
        same.append(any(spec == judge for judge, _ in judges))
    return same


# -- drawing the images -----------------------------------------------------------------------


def draw(run, work, seed: int, limit: int | None) -> tuple[list, list, int, int]:
    """(candidate rows, sampled non-candidate rows, candidates in all, non-candidates in all)."""
    cand_ids = set(run.candidates().column("id").to_pylist())
    by_id = {row.id: row for row in work.images}
    missing = sorted(cand_ids - set(by_id))
    if missing:
        raise InvalidValueError(f"candidate {missing[0]} of run {run.name!r} is not in its "
                                "sources any more; rebuild them as they were, or mine again")
    cands = sorted(cand_ids)
    others = sorted(set(by_id) - cand_ids)
    rng = random.Random(seed)
    if limit is not None and limit < len(cands):
        cands = sorted(rng.sample(cands, limit))
    sample = sorted(rng.sample(others, min(len(cands), len(others))))
    return ([by_id[i] for i in cands], [by_id[i] for i in sample], len(cand_ids), len(others))


# -- scoring (torch) --------------------------------------------------------------------------


def score_rows(judge, rows, spaces: dict[str, tuple[int, ...]], home: Path,
               batch_size: int = BATCH) -> list[tuple[int, float, bool]]:
    """(top-1, its probability, correct) of ``judge`` on each row's standard 1-crop, within the
    row's judged label space and against its judged label set."""
    import torch

    from ..labels import NUM_CLASSES
    from ..mining.engine import judge_verdicts
    from ..pixels import open_image
    from ..zoom import standard_crop

    names = sorted(spaces)
    masks = torch.zeros((len(names), NUM_CLASSES), dtype=torch.bool)
    for k, name in enumerate(names):
        masks[k, list(spaces[name])] = True
    masks = masks.to(judge.device)
    out: list[tuple[int, float, bool]] = []
    for start in range(0, len(rows), batch_size):
        part = rows[start:start + batch_size]
        crops = torch.stack([standard_crop(open_image(home / r.path)) for r in part])
        hot = torch.zeros((len(part), NUM_CLASSES), dtype=torch.bool)
        for i, r in enumerate(part):
            hot[i, list(r.judged_label)] = True
        space = torch.tensor([names.index(r.judged_space) for r in part])
        logits = judge(crops)
        correct, conf, top5, _ = judge_verdicts(logits.float(), space.to(judge.device), masks,
                                                hot.to(judge.device))
        out += [(int(t[0]), float(c), bool(ok)) for t, c, ok in
                zip(top5.cpu().tolist(), conf.cpu().tolist(), correct.cpu().tolist(), strict=True)]
    return out


def heldout_check(run, models, home=None, precision: str = "fp32", device=None, seed: int = 0,
                  method: str = "wilson", confidence: float = 0.95, limit: int | None = None,
                  batch_size: int = BATCH, progress=None) -> HeldOutReport:
    """Score ``models`` (specs, none of them a judge of ``run``) on the run's candidates and on
    as many seeded random non-candidates; write the report, plot and predictions in the run
    folder and return the report. ``limit`` caps the candidates scored (drawn with the seed)."""
    from ..home import data_home
    from ..judges import create_judge
    from ..mining import open_run
    from ..mining.plan import load_workload

    interval(0, 1, method, confidence)  # a bad interval or confidence fails before any work
    if limit is not None and int(limit) < 1:
        raise InvalidValueError(f"--limit must be at least 1, got {limit}")
    handle = open_run(run, home)
    specs = parse_models(models)
    same = check_held_out(specs, precision, handle.record)
    record = handle.record
    root = data_home(home)
    # the run's images are the first `images` ids of its sources (all of them unless mined
    # with --limit); the ids' hash says whether the sources still hold them
    work = load_workload(list(record.sources), root, record.objectnet_labels or "paper",
                         limit=record.images or None)
    if work.ids_sha256() != record.ids_sha256:
        raise InvalidValueError(f"the sources of run {handle.name!r} changed since it was mined "
                                "(their ids differ); rebuild them as they were, or mine again")
    cands, others, n_cands, n_others = draw(handle, work, seed, limit)
    results, rows = [], []
    for spec, shares in zip(specs, same, strict=True):
        if progress:
            progress(f"scoring {spec} ({precision}) on {len(cands) + len(others)} images")
        judge = create_judge(spec, device, precision=precision)
        accs = {}
        for group, part in zip(GROUPS, (cands, others), strict=True):
            scored = score_rows(judge, part, work.spaces, root, batch_size)
            k = sum(ok for _, _, ok in scored)
            accs[group] = Accuracy(len(part), k, *interval(k, len(part), method, confidence))
            rows += [{"id": r.id, "group": group, "model": spec, "precision": precision,
                      "top1": t, "confidence": c, "correct": ok}
                     for r, (t, c, ok) in zip(part, scored, strict=True)]
        results.append(ModelResult(spec, precision, shares, accs["candidates"], accs["others"]))
    report = HeldOutReport(run=handle.name, judge=record.judge, judge_precision=record.precision,
                           candidates_total=n_cands, others_total=n_others, seed=int(seed),
                           interval=method, confidence=float(confidence), models=tuple(results))
    write_report(handle, report, rows)
    return report


# -- files ------------------------------------------------------------------------------------


def report_dir(run) -> Path:
    return Path(run.dir) / HELDOUT_DIR


def write_report(run, report: HeldOutReport, rows: list[dict]) -> Path:
    from ..records import write_table

    out = report_dir(run)
    out.mkdir(parents=True, exist_ok=True)
    write_table(rows, PREDICTION_SCHEMA, out / PREDICTIONS)
    plot(report, out / PLOT)
    write_bytes_atomic(out / REPORT_MD, markdown(report).encode("utf-8"))
    write_json_atomic(out / REPORT_JSON, report.to_json())  # last: it marks the report complete
    return out


def read_report(run) -> HeldOutReport | None:
    """The run's held-out report, or None when it has none."""
    import json

    path = report_dir(run) / REPORT_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidValueError(f"{path} is unreadable ({exc}); run `imhard analyze heldout` "
                                "again") from exc
    if not isinstance(data, dict):
        raise InvalidValueError(f"{path} holds no JSON object; run `imhard analyze heldout` again")
    return HeldOutReport.from_json(data, path)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(report: HeldOutReport) -> list[str]:
    pct = f"{report.confidence:.0%}"
    lines = [f"| model | precision | candidates ({pct} {report.interval}) | "
             f"non-candidates ({pct} {report.interval}) | gap |", "|---|---|---:|---:|---:|"]
    for m in report.models:
        name = _cell(m.model) + (" (judge's weights)" if m.same_weights_as_judge else "")
        lines.append(f"| {name} | {m.precision} | {_acc(m.candidates)} | {_acc(m.others)} | "
                     f"{m.gap * 100:+.1f} |")
    return lines


def markdown(report: HeldOutReport) -> str:
    n_c, n_o = _n(report.models, "candidates"), _n(report.models, "others")
    lines = [f"# Held-out check of mining run `{_cell(report.run)}`", "",
             f"Judge: `{_cell(report.judge)}` ({report.judge_precision or 'precision not recorded'}). "
             f"Models that did not judge the run score {n_c:,} of its {report.candidates_total:,} "
             f"candidates and {n_o:,} of its {report.others_total:,} non-candidates (a random "
             f"sample, seed {report.seed}) on the standard 1-crop, top-1 within each image's "
             "label space. A positive gap (non-candidates minus candidates, in points) says the "
             "hardness transfers to that model.", "", *table(report), ""]
    if any(m.same_weights_as_judge for m in report.models):
        lines += ["A model marked *judge's weights* is the judge at another precision: a "
                  "robustness check, not independent evidence.", ""]
    lines += [f"![held-out accuracy]({PLOT})", ""]
    return "\n".join(lines)


def card_markdown(run) -> str:
    """The card's held-out lines for ``run`` (empty when the run has no report)."""
    try:
        report = read_report(run)
    except ImHardError:
        return ""
    if report is None or not report.models:
        return ""
    return "\n".join(["- **Held-out check** (`imhard analyze heldout`): models that did not "
                      "judge the run, on the candidates against a same-size random sample of "
                      "the non-candidates (standard 1-crop):", "", *table(report), "", ""])


def plot(report: HeldOutReport, path: Path) -> Path:
    """Bars per model: accuracy on the candidates and the sampled non-candidates, with intervals."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.0, 1.6 * len(report.models) + 2), 3.6), dpi=100,
                 layout="constrained")
    ax = fig.add_subplot()
    width = 0.38
    for k, (group, label) in enumerate(zip(GROUPS, ("candidates", "non-candidates"),
                                           strict=True)):
        accs = [getattr(m, group) for m in report.models]
        xs = [i + (k - 0.5) * width for i in range(len(accs))]
        ys = [a.accuracy * 100 for a in accs]
        err = [[max(0.0, y - a.low * 100) for y, a in zip(ys, accs, strict=True)],
               [max(0.0, a.high * 100 - y) for y, a in zip(ys, accs, strict=True)]]
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=label)
    ax.set_xticks(range(len(report.models)),
                  [f"{m.model}\n{m.precision}" for m in report.models], fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel(f"top-1 accuracy, % ({report.confidence:.0%} {report.interval})")
    ax.set_title(f"held out: run {report.run} (judge {report.judge})", fontsize=9)
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path

