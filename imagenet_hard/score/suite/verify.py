"""``verify_suite``: re-check a suite result — every set's numbers from its predictions and
labels, the ImageNet-C aggregates from the sets, and a seeded random subset of every set re-run
(all sets in one child, as scoring did, with the test-time augmentation the result records)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import check
from ..harness import RunOptions, VerifyReport, check_scored_file, recheck, submission_file
from .result import SuiteResult, load_suite
from .run import _imagenet_c, load_baseline
from .sets import IMAGENET_HARD_SET, SuiteSet, resolve_sets

#: Aggregates compared between a suite result and its recomputation.
_IMAGENET_C_CLAIMS = ("mean_error_benchmark", "mean_error_held_out", "per_corruption", "errors")


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


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if a is None or b is None:
        return a is b
    return (isinstance(a, (int, float)) and not isinstance(a, bool)
            and abs(float(a) - float(b)) <= check.TOLERANCE)


def imagenet_c_problems(result: SuiteResult, sets: list[SuiteSet],
                        baseline: SuiteResult | None) -> tuple[list[str], list[str]]:
    """(problems, notes) of the result's ImageNet-C aggregates against a recomputation."""
    again = _imagenet_c(result.sets, sets, baseline)
    claimed = result.imagenet_c
    if (again is None) != (claimed is None):
        return ["imagenet_c: the aggregates do not match the sets listed"], []
    if again is None:
        return [], []
    problems = [f"imagenet_c.{k}: claimed {claimed.get(k)!r:.80}, the sets give {again[k]!r:.80}"
                for k in _IMAGENET_C_CLAIMS if not _same(claimed.get(k), again[k])]
    notes = []
    if baseline is None:
        if claimed.get("mce") is not None:
            notes.append("mCE not re-checked: pass --baseline with the AlexNet suite result")
    elif not _same(claimed.get("mce"), again["mce"]):
        problems.append(f"imagenet_c.mce: claimed {claimed.get('mce')}, the baseline gives "
                        f"{again['mce']}")
    return problems, notes


def verify_suite(result_path: str | Path, sample: int = 200, seed: int = 0,
                 submission: str | Path | None = None, dataset=None, home=None,
                 options: RunOptions | None = None,
                 baseline: str | Path | None = None) -> SuiteVerifyReport:
    """Re-check every set of a suite result and re-run ``sample`` random rows of each."""
    opts = options or RunOptions()
    result = load_suite(result_path)
    base = load_baseline(baseline) if baseline else None
    sub = submission_file(submission or result.submission["file"])
    opts.check_sandbox()
    check_scored_file(sub, result.submission["sha256"])
    names = [e["name"] for e in result.sets]
    if dataset is None and IMAGENET_HARD_SET in names:  # where it was scored, as `verify` does
        dataset = result.entry(IMAGENET_HARD_SET)["dataset"].get("source")
    sets = resolve_sets(names, dataset, home=home)
    reports = recheck(result_path, [(s, result.set_result(k)) for k, s in enumerate(sets)], sub,
                      opts, sample, seed)
    problems, notes = imagenet_c_problems(result, sets, base)
    return SuiteVerifyReport(reports, problems, notes)
