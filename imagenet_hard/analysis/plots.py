"""PNG plots of an analysis, drawn with matplotlib's Agg canvas (no display, no pyplot state).

* ``anchors-<subset>.png``: the 3×3 maximum possible accuracy per anchor (paper Fig. 5);
* ``scales.png``: accuracy against the scale S, with the 9 anchors and with the centre anchor,
  a line per subset, and the standard S=256 marked (Fig. 4);
* ``cover.png``: accuracy reached by the first k transforms of the greedy cover (Tab. 1b / 2).

Each file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..files import atomic_path
from ..zoom import CROP, SCALES
from .stats import COVER_PREFIXES, SubsetAnalysis

STANDARD_SCALE = 256


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def file_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "subset"


def anchor_heatmap(sub: SubsetAnalysis, path: Path) -> Path:
    fig = _figure(4.2, 4.0)
    ax = fig.add_subplot()
    values = [[100 * v for v in row] for row in sub.anchors]
    image = ax.imshow(values, cmap="Greens", vmin=0, vmax=100)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center",
                    color="white" if v > 60 else "black", fontsize=12)
    ax.set_xticks(range(3), ["left", "centre", "right"])
    ax.set_yticks(range(3), ["top", "middle", "bottom"])
    ax.set_title(f"{sub.name}: max accuracy per anchor (%)\n36 scales each, {sub.images} images",
                 fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def scale_plot(subs: list[SubsetAnalysis], path: Path) -> Path:
    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot()
    for k, sub in enumerate(subs):
        colour = f"C{k % 10}"
        ax.plot(SCALES, [100 * v for v in sub.scale_max], "-o", ms=3, color=colour,
                label=f"{sub.name}: 9 anchors (max)")
        ax.plot(SCALES, [100 * v for v in sub.scale_centre], "--", color=colour, alpha=0.7,
                label=f"{sub.name}: centre anchor")
    ax.axvline(STANDARD_SCALE, color="black", lw=1)
    ax.text(STANDARD_SCALE, 1.0, " S=256", transform=ax.get_xaxis_transform(), va="top")
    ax.axvspan(min(SCALES), CROP, color="grey", alpha=0.08, lw=0)
    ax.set_xscale("log")
    ticks = [16, 32, 64, 128, 512, 1024]  # 224 is the shading's edge, 256 the marked line
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("scale S (shorter side after resizing; shaded: zoom-out)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy against zoom scale")
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def cover_curve(subs: list[SubsetAnalysis], path: Path) -> Path:
    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot()
    for k, sub in enumerate(subs):
        colour = f"C{k % 10}"
        acc, total = 0, []
        for gain in sub.cover_gains:
            acc += gain
            total.append(100 * acc / sub.images)
        xs = list(range(1, len(total) + 1))
        ax.step(xs, total, where="post", color=colour,
                label=f"{sub.name}: cover of {sub.cover_size}")
        ax.axhline(100 * sub.max_accuracy, color=colour, lw=0.8, ls=":")
        marks = [k for k in COVER_PREFIXES if k <= len(total)]
        ax.plot(marks, [total[k - 1] for k in marks], "o", color=colour, ms=4)
    for k in COVER_PREFIXES:
        ax.axvline(k, color="grey", lw=0.5, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xlim(0.8, 330)
    ax.set_ylim(0, 100)
    ax.set_xlabel("first k transforms of the greedy cover (dotted: all 324)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Greedy minimum set cover")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def write_plots(subs: list[SubsetAnalysis], out: Path) -> list[Path]:
    """Every plot of ``subs`` into folder ``out``; the paths written."""
    out = Path(out)
    paths = [anchor_heatmap(sub, out / f"anchors-{file_slug(sub.name)}.png") for sub in subs]
    paths.append(scale_plot(subs, out / "scales.png"))
    paths.append(cover_curve(subs, out / "cover.png"))
    return paths
