"""``imhard analyze``: the analysis of an exhaustive run as ``report.md`` (the paper's tables),
``analysis.json`` (every number, machine-readable) and the plots of :mod:`.plots`.

Accuracies are fractions in [0, 1] in the JSON and percentages in the report.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import home as homes
from ..files import write_bytes_atomic, write_json_atomic
from ..zoom import GROUPS, N_TRANSFORMS, SCALES, transform_info
from .masks import RunMasks, load_run
from .ordering import OrderComparison, held_out_forward_passes
from .plots import write_plots
from .stats import COVER_PREFIXES, SubsetAnalysis, analyze, stats_definitions

ANALYSIS_FORMAT = "1"
#: Transforms of each cover listed in the report (all are in analysis.json).
COVER_SHOWN = 12


@dataclass
class AnalysisReport:
    """Where an analysis was written and what it found."""

    run: str
    out: Path
    subsets: list[SubsetAnalysis]
    order: OrderComparison | None
    plots: list[Path] = field(default_factory=list)
    seconds: float = 0.0        # analysing and writing
    read_seconds: float = 0.0   # reading the run

    @property
    def report(self) -> Path:
        return self.out / "report.md"

    @property
    def json(self) -> Path:
        return self.out / "analysis.json"

    def summary(self) -> str:
        lines = [f"{s.name}: {s.images} images, 1-crop {_pct(s.one_crop_standard)} % "
                 f"(paper's {_pct(s.one_crop_paper)} %), max possible {_pct(s.max_accuracy)} % "
                 f"with 324 transforms, greedy cover {s.cover_size}" for s in self.subsets]
        if self.order:
            lines.append(self.order.summary())
        return "\n".join(lines)


def default_out(run: str, home=None) -> Path:
    return homes.analysis_dir(home) / run


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def _accuracy_section(subs: list[SubsetAnalysis]) -> list[str]:
    head = ["subset", "images", "1-crop", "1-crop (paper)",
            *[f"cover top-{k}" for k in COVER_PREFIXES], "max possible (324)"]
    rows = [[s.name, s.images, _pct(s.one_crop_standard), _pct(s.one_crop_paper),
             *[_pct(s.cover_accuracy[str(k)]) for k in COVER_PREFIXES], _pct(s.max_accuracy)]
            for s in subs]
    return ["## Accuracy (Table 1)", "", *_table(head, rows)]


def _cover_section(subs: list[SubsetAnalysis]) -> list[str]:
    rows = []
    for s in subs:
        shown = ", ".join(str(transform_info(t)) for t in s.cover[:COVER_SHOWN])
        more = f", … (+{s.cover_size - COVER_SHOWN})" if s.cover_size > COVER_SHOWN else ""
        rows.append([s.name, s.cover_size, f"{100 * s.cover_size / N_TRANSFORMS:.1f}",
                     shown + more])
    return ["## Greedy minimum set cover (Table 2)", "",
            "Transforms needed to reach the maximum possible accuracy; ties go to the lowest "
            "transform index. Every transform of every cover is in `analysis.json`.", "",
            *_table(["subset", "size", "% of 324", "first transforms, in the order picked"], rows)]


def _groups_section(subs: list[SubsetAnalysis]) -> list[str]:
    head = ["subset", *[f"{g} solves" for g in GROUPS], *[f"only {g}" for g in GROUPS],
            *[f"only {g} (cover)" for g in GROUPS]]
    rows = [[s.name, *[_pct(s.groups[g]["solves"]) for g in GROUPS],
             *[_pct(s.groups[g]["only"]) for g in GROUPS],
             *[_pct(s.groups_within_cover[g]["only"]) for g in GROUPS]] for s in subs]
    return ["## Zoom groups (Table 3 / A1)", "",
            "zoom-out: S < 224 (81 transforms), zoom-224: S = 224 (9), zoom-in: S > 224 (234). "
            "*only*: solved by that group and by neither other group, over all 324 transforms, "
            "and over the transforms of the greedy cover (as appendix B.1).", "",
            *_table(head, rows)]


def _anchor_section(subs: list[SubsetAnalysis]) -> list[str]:
    lines = ["## Maximum possible accuracy per anchor (Fig. 5)", ""]
    for s in subs:
        rows = [[name, *[_pct(v) for v in row]]
                for name, row in zip(("top", "middle", "bottom"), s.anchors, strict=True)]
        lines += [f"**{_cell(s.name)}**", "", *_table(["", "left", "centre", "right"], rows)]
    return lines


def _scale_section(subs: list[SubsetAnalysis]) -> list[str]:
    head = ["S", "group", *[f"{s.name} (9 anchors)" for s in subs],
            *[f"{s.name} (centre)" for s in subs]]
    rows = [[scale, transform_info(9 * k).group, *[_pct(s.scale_max[k]) for s in subs],
             *[_pct(s.scale_centre[k]) for s in subs]] for k, scale in enumerate(SCALES)]
    return ["## Accuracy per scale (Fig. 4)", "", *_table(head, rows)]


def _order_section(order: OrderComparison | None, run: str) -> list[str]:
    if order is None:
        return []
    return ["## Crop order for early-exit mining", "",
            f"`imhard mine … --order-from {run}` evaluates this run's greedy cover first. "
            f"Forward passes per image, learned on a random half and replayed on the other "
            f"({order.splits} splits, both ways round):", "",
            *_table(["order", "held-out images", "held-out, solved images", "learning half"],
                    [["learned (greedy cover)", f"{order.learned:.2f}",
                      f"{order.learned_solved:.2f}", f"{order.learned_train:.2f}"],
                     ["heuristic (built in)", f"{order.heuristic:.2f}",
                      f"{order.heuristic_solved:.2f}", f"{order.heuristic_train:.2f}"]])]


def markdown(masks: RunMasks, subs: list[SubsetAnalysis], order: OrderComparison | None,
             plots: list[Path]) -> str:
    rec = masks.record
    head = [f"# Zoom analysis of run `{_cell(masks.run or 'masks')}`", "",
            f"Judge `{_cell(rec.get('judge', '?'))}` on {_cell(', '.join(rec.get('sources', [])))}"
            f": {len(masks)} images, every one of the 324 zoom crops judged. Accuracies in %. "
            "Definitions at the end.", ""]
    figs = ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    defs = ["## Definitions", ""] + [f"- **{k}**: {v}" for k, v in stats_definitions().items()]
    return "\n".join(head + _accuracy_section(subs) + _cover_section(subs) + _groups_section(subs)
                     + _anchor_section(subs) + _scale_section(subs) + _order_section(order,
                                                                                     masks.run)
                     + figs + defs) + "\n"


def write_analysis(masks: RunMasks, out: Path, order_splits: int = 10) -> AnalysisReport:
    """Analyse ``masks`` and write ``report.md``, ``analysis.json`` and the plots into ``out``."""
    t0 = time.perf_counter()
    out = Path(out)
    subs = analyze(masks)
    order = held_out_forward_passes(masks, splits=order_splits) if len(masks) >= 2 else None
    plots = write_plots(subs, out)
    rec = masks.record
    data = {"format": ANALYSIS_FORMAT, "run": masks.run,
            "run_record": {k: rec.get(k) for k in ("judge", "sources", "images", "ids_sha256",
                                                   "crop_order")},
            "subsets": [s.to_dict() for s in subs],
            "order": None if order is None else asdict(order),
            "plots": [p.name for p in plots], "definitions": stats_definitions()}
    write_json_atomic(out / "analysis.json", data)
    write_bytes_atomic(out / "report.md", markdown(masks, subs, order, plots).encode("utf-8"))
    return AnalysisReport(masks.run, out, subs, order, plots, time.perf_counter() - t0)


def analyze_run(run: str, out: str | Path | None = None, home=None) -> AnalysisReport:
    """``imhard analyze RUN``: read the run, write its analysis (default ``<home>/analysis/RUN``)."""
    t0 = time.perf_counter()
    masks = load_run(run, home)
    read = time.perf_counter() - t0
    res = write_analysis(masks, Path(out) if out else default_out(run, home))
    res.read_seconds = read
    return res
