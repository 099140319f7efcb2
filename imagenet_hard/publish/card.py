"""The dataset card: ``README.md`` rendered from the ``dataset_card.md`` template, and its chart.

The repository's top-level ``dataset_card.md`` is the template's one source of truth; a byte-identical
copy ships as package data (``imagenet_hard/templates/dataset_card.md``) so an installed wheel can
render it, and a test fails when the two differ. Everything rendered is a pure function of the
published rows, the run and the folder's ledger (a version's date is the ledger's, never the
clock's); the chart's metadata is fixed.
"""

from __future__ import annotations

import hashlib
import io
import json
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from ..errors import InvalidValueError
from ..mining import OriginCounts, RunRecord, RunSummary
from ..mining_protocol import KNOB_NAMES, MEANINGS, PROTOCOLS
from .selection import Selection
from .shards import SPLIT, features

TEMPLATE_RESOURCE = "templates/dataset_card.md"
CHART_NAME = "origins.png"
ORIGIN_TABLE_HEADER = "| origin | images | share |"
#: The card's last line records the run it was rendered from and the SHA-256 of every byte above
#: it. The card is made from the run and its review, which a published folder does not carry, so
#: ``publish --check`` cannot render it again from the folder; it compares against this record.
SEAL_START, SEAL_END = "<!-- imhard-card ", " -->\n"


@dataclass(frozen=True)
class Stats:
    """What the card says about the written shards."""

    num_rows: int
    num_shards: int
    num_bytes: int          # uncompressed (arrow) size, as ``datasets`` reports ``num_bytes``
    download_size: int      # bytes of the parquet files
    by_origin: dict[str, int]


def template_text(path: str | Path | None = None) -> str:
    if path is not None:
        return Path(path).read_text(encoding="utf-8")
    return resources.files("imagenet_hard").joinpath(TEMPLATE_RESOURCE).read_text(encoding="utf-8")


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    for limit, name in ((10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"),
                        (10**6, "100K<n<1M"), (10**7, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def dataset_info_yaml(stats: Stats) -> str:
    """``dataset_info`` as ``datasets`` itself writes it into a card (so load_dataset reads it back)."""
    from datasets.info import DatasetInfo
    from datasets.splits import SplitDict, SplitInfo

    info = DatasetInfo(
        features=features(),
        splits=SplitDict({SPLIT: SplitInfo(name=SPLIT, num_bytes=stats.num_bytes,
                                           num_examples=stats.num_rows)}),
        download_size=stats.download_size, dataset_size=stats.num_bytes,
    )
    text = yaml.safe_dump(info._to_yaml_dict(), sort_keys=False, allow_unicode=True)
    return "\n".join("  " + line for line in text.rstrip("\n").splitlines())


def origin_table(by_origin: dict[str, int]) -> str:
    total = sum(by_origin.values())
    lines = [f"| `{o}` | {n:,} | {100 * n / total:.1f}% |" for o, n in sorted(by_origin.items())]
    return "\n".join(lines + [f"| **total** | **{total:,}** | 100.0% |"])


def origin_chart(by_origin: dict[str, int]) -> bytes:
    """A horizontal bar chart as PNG bytes, identical for identical counts (no Software metadata)."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = sorted(by_origin)
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(7, 1.2 + 0.32 * len(names)), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        bars = ax.barh(names[::-1], [by_origin[n] for n in names[::-1]], color="#4c72b0")
        ax.bar_label(bars, labels=[f"{by_origin[n]:,}" for n in names[::-1]], padding=3, fontsize=8)
        ax.set_xlabel("images")
        ax.set_title("ImageNet-Hard: images per origin")
        ax.margins(x=0.12)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def judged_table(summary: RunSummary, published: dict[str, int]) -> str:
    """Per origin: images judged, candidates, published."""
    per = summary.per_origin
    if not per:
        return ""
    lines = ["", "| origin | judged | candidates | published |", "|---|---:|---:|---:|"]
    for origin in sorted(set(per) | set(published)):
        d = per.get(origin) or OriginCounts(0, 0)
        lines.append(f"| `{origin}` | {d.images:,} | {d.candidates:,} | "
                     f"{published.get(origin, 0):,} |")
    return "\n".join(lines) + "\n\n"


def protocol_text(record: RunRecord) -> str:
    """The card's account of the run's mining protocol: its name and each knob's value."""
    proto = record.protocol_record()
    if proto is None:
        return ("- **Protocol**: not recorded (the run was mined before imagenet-hard recorded "
                "its protocol).")
    lines = [f"- **Protocol** `{proto.name}`: {PROTOCOLS[proto.name].summary}."]
    for knob, value in proto.knobs().items():
        overridden = " (set by hand, not the protocol's)" if knob in proto.overrides else ""
        lines.append(f"  - {KNOB_NAMES[knob]} `{value}`: {MEANINGS[(knob, value)]}{overridden}.")
    if record.weights_sha256:
        lines.append(f"  - judge weights: a local file, SHA-256 `{record.weights_sha256}`.")
    return "\n".join(lines)


def review_text(sel: Selection) -> str:
    decided = sel.kept + sel.removed
    if decided:
        lines = [f"The run found {sel.candidates:,} candidates; reviewers decided {decided:,}: "
                 f"**{sel.kept:,} kept** and **{sel.removed:,} removed** (ill-posed, wrong label, "
                 "duplicate)."]
    else:
        lines = [f"The run found {sel.candidates:,} candidates; none has been reviewed yet."]
    if sel.pending:
        fate = ("are **included** in this release (published with `--include-pending`)"
                if sel.include_pending else "are left out of this release")
        lines.append(f"{sel.pending:,} candidates were not reviewed and {fate}.")
    if sel.removed_by_reason:
        lines += ["", "| reason for removal | images |", "|---|---:|"]
        lines += [f"| {r} | {n:,} |" for r, n in sel.removed_by_reason.items()]
    if sel.tags:
        lines += ["", "Kinds of hard image tagged by reviewers among the published images:", "",
                  "| tag | images |", "|---|---:|"]
        lines += [f"| {t} | {n:,} |" for t, n in sel.tags.items()]
    lines += ["", "The paper's own review removed 295 of 13,925 candidates as obviously ill-posed."]
    return "\n".join(lines)


def licence_text(sel: Selection) -> str:
    from ..sources import SOURCES

    counts: dict[str, int] = {}
    for r in sel.rows:
        counts[r.source] = counts.get(r.source, 0) + 1
    lines = []
    for name in sorted(counts):
        try:
            b = SOURCES.get(name)
        except KeyError:
            lines.append(f"- **{name}** ({counts[name]:,} images): see the source's own terms.")
            continue
        parts = [f"- **{name}** ({counts[name]:,} images): {b.licence or 'see the source terms'}."]
        if b.homepage:
            parts.append(f"<{b.homepage}>.")
        if b.citation:
            parts.append(f"Cite: {b.citation}.")
        lines.append(" ".join(parts))
    return "\n".join(lines)


#: The unversioned card's Versions section and configs (``releases.changelog_markdown``'s words).
UNVERSIONED = ("", None)


def render(sel: Selection, stats: Stats, fingerprint: str, template: str | Path | None = None,
           versions: tuple[str, str | None] = UNVERSIONED) -> str:
    """The card's markdown for these rows; the template's ``${name}`` fields are filled in.

    ``versions`` is ``(configs, section)``: the YAML ``configs`` entries of every version and the
    Versions section (:mod:`.releases`); ``section`` None says the folder has no version."""
    from ..analysis.heldout import card_markdown as heldout_card
    from .releases import Ledger, changelog_markdown

    configs, section = versions
    summary = sel.summary
    exhaustive = " (exhaustive run: every view judged)" if summary.exhaustive else ""
    fields = {
        "size_category": size_category(stats.num_rows),
        "dataset_info": dataset_info_yaml(stats),
        "num_rows": f"{stats.num_rows:,}",
        "num_shards": str(stats.num_shards),
        "fingerprint": fingerprint,
        "origin_table": origin_table(stats.by_origin),
        "run_name": sel.run.name,
        "judge": f"`{summary.judge}`",
        "sources_judged": ", ".join(f"`{s}`" for s in summary.sources),
        "images_judged": f"{summary.images:,}",
        "candidates": f"{sel.candidates:,}",
        "exhaustive": exhaustive,
        "protocol": protocol_text(sel.run.record),
        # the held-out check's table follows, when the run has one (`imhard analyze heldout`)
        "judged_table": judged_table(summary, stats.by_origin) + heldout_card(sel.run),
        "review": review_text(sel),
        "licences": licence_text(sel),
        "version_configs": configs + "\n" if configs else "",
        "versions": changelog_markdown(Ledger()) if section is None else section,
    }
    try:
        return seal(string.Template(template_text(template)).substitute(fields), sel.run.name)
    except (KeyError, ValueError) as exc:
        raise InvalidValueError(
            f"dataset card template has an unknown or malformed field ({exc}); the fields are "
            f"{', '.join('${' + k + '}' for k in fields)}") from None


def seal(text: str, run: str) -> str:
    """``text`` with its record as the last line (an HTML comment: invisible where rendered)."""
    body = text if text.endswith("\n") else text + "\n"
    record = json.dumps({"run": run, "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest()})
    record = record.replace(">", r"\u003e")   # else a run name could close the comment early
    return f"{body}{SEAL_START}{record}{SEAL_END}"


def read_seal(data: bytes) -> tuple[str | None, bool]:
    """``(run, intact)`` of a card's bytes: the run its record names (None without a record) and
    whether the record is the last line and every byte above it is what was rendered."""
    cut = data.rfind(b"\n" + SEAL_START.encode()) + 1
    end = data.find(SEAL_END.strip().encode(), cut)
    if cut == 0 or end < 0:
        return None, False
    try:
        record = json.loads(data[cut + len(SEAL_START):end])
        run, digest = str(record["run"]), str(record["sha256"])
    except (ValueError, TypeError, KeyError):
        return None, False
    last = data[end:] == SEAL_END.lstrip().encode()
    return run, last and hashlib.sha256(data[:cut]).hexdigest() == digest


def card_header(readme: str) -> dict:
    """The YAML header of a rendered card."""
    if not readme.startswith("---\n"):
        return {}
    end = readme.find("\n---\n", 4)
    return yaml.safe_load(readme[4:end]) if end > 0 else {}


def card_origin_counts(readme: str) -> dict[str, int]:
    """The per-origin counts the card's table states (used by ``publish --check``)."""
    lines = readme.splitlines()
    try:
        start = lines.index(ORIGIN_TABLE_HEADER) + 2
    except ValueError:
        return {}
    out = {}
    for line in lines[start:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or cells[0].startswith("**"):
            break
        out[cells[0].strip("`")] = int(cells[1].replace(",", ""))
    return out

