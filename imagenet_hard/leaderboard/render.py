"""The board as markdown (``leaderboard/README.md``) and as one static HTML page
(``leaderboard/index.html``: the suite view, then one sortable table per dataset with per-origin
columns, CIs, flags and an inline SVG chart; no network, no CDN).

Every text that came from a result (names, dataset ids, set names, origins, URLs, TTA modes) is
untrusted: markdown cells get HTML entities and backslashes before markdown punctuation, the page
gets HTML escaping, links only for http(s) URLs, and a Content-Security-Policy that runs no script
but its own.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlsplit

from .entries import Entry, origins_of
from .suites import SuiteRow, imagenet_c_groups, suite_columns

_MD_PUNCT = re.compile(r"([\\`*_~\[\]|])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Rows a section's chart shows at most (the table shows them all).
CHART_ROWS = 25


def md_text(text) -> str:
    """``text`` as literal text in a markdown table cell: ``& < >`` as entities (no raw HTML),
    a backslash before the punctuation of links, emphasis, code and tables, no line breaks."""
    return _MD_PUNCT.sub(r"\\\1", html.escape(_CONTROL.sub(" ", str(text)), quote=False))


def _link(url: str | None) -> str | None:
    """``url`` when it is safe as an ``href`` (http or https), else None."""
    return url if url and urlsplit(url).scheme in ("http", "https") else None


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _ci(ci) -> str:
    return "—" if ci is None else f"{100 * ci[0]:.2f}–{100 * ci[1]:.2f}"


def _flag(x: bool | None) -> str:
    return "—" if x is None else ("yes" if x else "no")


def _tta(e: Entry | SuiteRow) -> str:
    """The TTA cell: the harness's mode by name, else the submission's own flag."""
    return e.tta_mode if e.tta_mode else _flag(e.uses_tta)


@dataclass
class Section:
    key: str
    label: str
    entries: list[Entry]


def sections(entries: list[Entry]) -> list[Section]:
    """Entries grouped by dataset, best first in each; sections with verified rows first (most
    verified rows first), then the reported-only ones in the order they were published."""
    by_key: dict[str, Section] = {}
    for e in entries:
        sec = by_key.setdefault(e.section, Section(e.section, "", []))
        sec.entries.append(e)
    for sec in by_key.values():
        sec.entries.sort(key=lambda e: (-e.accuracy, e.status != "verified", e.name))
        verified = [e for e in sec.entries if e.status == "verified"]
        reported = [e for e in sec.entries if e.status == "reported"]
        sec.label = (f"{reported[0].dataset} = {verified[0].dataset}" if verified and reported
                     else (verified or reported)[0].dataset)
    order = {e.section: k for k, e in enumerate(entries) if e.status == "reported"}
    return sorted(by_key.values(), key=lambda s: (
        -sum(e.status == "verified" for e in s.entries), order.get(s.key, -1), s.label))


HEADS = ["#", "Model", "Status", "Top-1 %", "95% CI", "Top-5 %", "ECE", "TTA", "Extra data"]


def _section_md(sec: Section) -> str:
    origins = origins_of(sec.entries)
    head = [*HEADS, *[f"{md_text(o)} %" for o in origins]]
    lines = [f"### {md_text(sec.label)}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for rank, e in enumerate(sec.entries, 1):
        cells = [str(rank), md_text(e.name), e.status, _pct(e.accuracy), _ci(e.ci95),
                 _pct(e.top5), "—" if e.ece is None else f"{e.ece:.3f}", md_text(_tta(e)),
                 _flag(e.extra_training_data), *[_pct(e.per_origin.get(o)) for o in origins]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


IMAGENET_C_HEADS = ("IN-C err % (15)", "IN-C held-out err % (4)", "mCE %")


def _imagenet_c_cells(row: SuiteRow, group: str) -> list[float | None]:
    if row.imagenet_c_key != group or not row.imagenet_c:
        return [None, None, None]
    c = row.imagenet_c
    return [c["mean_error_benchmark"], c["mean_error_held_out"], c["mce"]]


def suite_markdown(rows: list[SuiteRow]) -> str:
    if not rows:
        return ""
    cols, groups = suite_columns(rows), imagenet_c_groups(rows)
    head = ["Model", "TTA", "Extra data", *[md_text(c.label) + " %" for c in cols],
            *[h + (f" ({g[:8]})" if len(groups) > 1 else "") for g in groups
              for h in IMAGENET_C_HEADS]]
    lines = ["### Suite (one column per set and fingerprint)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [md_text(row.name), md_text(_tta(row)), _flag(row.extra_training_data)]
        cells += [f"{_pct(row.cells[c.key].accuracy)} ({_ci(row.cells[c.key].ci95)})"
                  if c.key in row.cells else "—" for c in cols]
        cells += [_pct(x) for g in groups for x in _imagenet_c_cells(row, g)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(entries: list[Entry], suites: list[SuiteRow] = ()) -> str:
    """The suite view and one table per dataset, in GitHub markdown."""
    parts = [suite_markdown(list(suites))] if suites else []
    parts += [_section_md(s) for s in sections(entries)]
    return "\n\n".join(parts)


def readme(entries: list[Entry], suites: list[SuiteRow] = ()) -> str:
    return (
        "# ImageNet-Hard leaderboard\n\n"
        "Generated by `imhard leaderboard build`; do not edit by hand.\n\n"
        "- **verified**: scored by `imhard score` (result JSON + per-image predictions in "
        "`results/`, checked by `imhard leaderboard add`; anyone can re-run `imhard verify`).\n"
        "- **reported**: numbers as published (the release's card, the paper's Table 6 on "
        "13,630 rows, the authors' README and open_clip tables), not re-measured.\n\n"
        "Each table is one dataset, named by its fingerprint: rows are ranked only against rows "
        "on the same data. Suite sets use their own protocols (see the toolkit's README); "
        "ImageNet-Hard: top-1 over all 1000 classes, correct when in the image's label set. "
        "95% CI: Wilson; ECE: 15 equal-width bins. mCE is relative to the reference AlexNet "
        "submission on the same ImageNet-C tables, \"—\" without one (the errors are then "
        "unnormalised).\n\n" + markdown(entries, suites) + "\n")


def _td(text: str, value=None, cls: str = "") -> str:
    sort = "" if value is None else f' data-v="{html.escape(str(value))}"'
    klass = f' class="{cls}"' if cls else ""
    return f"<td{klass}{sort}>{text}</td>"


def _num(x) -> str:
    return "" if x is None else f"{x:.6f}"  # empty sorts last


def _name_cell(name: str, url: str | None) -> str:
    text, url = html.escape(name), _link(url)
    return f'<a href="{html.escape(url)}" rel="nofollow noopener">{text}</a>' if url else text


def _row(rank: int, e: Entry, origins: list[str]) -> str:
    cells = [
        _td(str(rank), rank, "num"), _td(_name_cell(e.name, e.url), e.name.lower()),
        _td(f'<span class="badge {e.status}">{e.status}</span>', e.status),
        _td(_pct(e.accuracy), _num(e.accuracy), "num"),
        _td(_ci(e.ci95), _num(e.ci95 and e.ci95[0]), "num ci"),
        _td(_pct(e.top5), _num(e.top5), "num"),
        _td("—" if e.ece is None else f"{e.ece:.3f}", _num(e.ece), "num"),
        _td(html.escape(_tta(e)), _tta(e)),
        _td(_flag(e.extra_training_data), _flag(e.extra_training_data)),
        *[_td(_pct(e.per_origin.get(o)), _num(e.per_origin.get(o)), "num") for o in origins],
    ]
    title = html.escape(f"{e.source}{' — ' + e.note if e.note else ''}")
    return f'<tr class="{e.status}" title="{title}">' + "".join(cells) + "</tr>"


def _thead(heads: list[str], numeric: set[int], lower_better: set[int] = frozenset()) -> str:
    return "".join(
        f'<th data-col="{i}" data-type="{"num" if i in numeric else "text"}"'
        + (' data-first="ascending"' if i in lower_better else "")
        + f' tabindex="0">{html.escape(h)}</th>' for i, h in enumerate(heads))


def _section_html(k: int, sec: Section) -> str:
    origins = origins_of(sec.entries)
    heads = [*HEADS, *[f"{o} %" for o in origins]]
    numeric = {0, 3, 4, 5, 6, *range(len(HEADS), len(heads))}
    rows = "\n".join(_row(r, e, origins) for r, e in enumerate(sec.entries, 1))
    shown = sec.entries[:CHART_ROWS]
    more = (f'<p class="note">Chart: the best {CHART_ROWS} of {len(sec.entries)} rows.</p>'
            if len(sec.entries) > CHART_ROWS else "")
    return (f'<h2>{html.escape(sec.label)}</h2>\n<div class="card scroll">'
            f'<table class="sortable board" id="board-{k}"><thead><tr>{_thead(heads, numeric)}'
            f"</tr></thead><tbody>\n{rows}\n</tbody></table></div>\n"
            f'<div class="card">{more}{chart_svg(shown)}</div>')


def _suite_html(rows: list[SuiteRow]) -> str:
    if not rows:
        return ""
    cols, groups = suite_columns(rows), imagenet_c_groups(rows)
    heads = ["Model", "TTA", "Extra data", *[f"{c.label} %" for c in cols],
             *[h + (f" ({g[:8]})" if len(groups) > 1 else "") for g in groups
               for h in IMAGENET_C_HEADS]]
    numeric = set(range(3, len(heads)))
    lower = set(range(3 + len(cols), len(heads)))          # errors: lower is better
    body = []
    for row in rows:
        cells = [_td(_name_cell(row.name, row.url), row.name.lower()),
                 _td(html.escape(_tta(row)), _tta(row)),
                 _td(_flag(row.extra_training_data), _flag(row.extra_training_data))]
        for c in cols:
            cell = row.cells.get(c.key)
            cells.append(_td("—", None, "num") if cell is None else _td(
                f'{_pct(cell.accuracy)}<span class="ci2">{_ci(cell.ci95)}</span>',
                _num(cell.accuracy), "num"))
        cells += [_td(_pct(x), _num(x), "num") for g in groups for x in _imagenet_c_cells(row, g)]
        body.append(f'<tr class="verified" title="{html.escape(row.source)}">' + "".join(cells)
                    + "</tr>")
    return ('<h2>Suite: one column per set and fingerprint</h2>\n<p class="note">Top-1 % with its '
            "95% Wilson interval, each set under its own protocol; ImageNet-C: mean top-1 error, "
            "mCE relative to the reference AlexNet on the same tables (— without one).</p>\n"
            '<div class="card scroll"><table class="sortable" id="suite"><thead><tr>'
            f"{_thead(heads, numeric, lower)}</tr></thead><tbody>\n" + "\n".join(body)
            + "\n</tbody></table></div>")


def _short(dataset: str) -> str:
    head = dataset.split(" (")[0]
    return {"ImageNet-Hard release": "release", "paper Table 6": "Table 6"}.get(head, head)


def chart_svg(entries: list[Entry], width: int = 760) -> str:
    """Horizontal bars of top-1 accuracy with Wilson intervals, one bar per row given."""
    bar_h, gap, left, right, top = 18, 6, 290, 60, 28
    top_acc = max([e.accuracy for e in entries] + [e.ci95[1] for e in entries if e.ci95] + [0.05])
    scale = (width - left - right) / top_acc
    height = top + len(entries) * (bar_h + gap) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="Top-1 accuracy per model">',
             f'<text x="{left}" y="16" class="axis">top-1 accuracy (%), whiskers: 95% CI</text>']
    for k, e in enumerate(entries):
        y = top + k * (bar_h + gap)
        w = max(1.0, e.accuracy * scale)
        label = html.escape(f"{e.name} · {_short(e.dataset)}")
        parts.append(f'<text x="{left - 8}" y="{y + 13}" class="lbl" text-anchor="end">{label}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="3" '
                     f'class="bar {e.status}"><title>{html.escape(e.name)}: '
                     f'{_pct(e.accuracy)}%</title></rect>')
        if e.ci95:
            x0, x1, ym = left + e.ci95[0] * scale, left + e.ci95[1] * scale, y + bar_h / 2
            parts.append(f'<path d="M{x0:.1f} {ym}H{x1:.1f}M{x0:.1f} {ym - 5}V{ym + 5}'
                         f'M{x1:.1f} {ym - 5}V{ym + 5}" class="ci"/>')
        parts.append(f'<text x="{left + max(w, (e.ci95[1] * scale) if e.ci95 else 0) + 6:.1f}" '
                     f'y="{y + 13}" class="val">{_pct(e.accuracy)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def page(entries: list[Entry], suites: list[SuiteRow] = ()) -> str:
    n_ver = sum(e.status == "verified" for e in entries)
    template = resources.files("imagenet_hard").joinpath("templates", "leaderboard.html")
    text = template.read_text(encoding="utf-8")
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(_section_html(k, s) for k, s in enumerate(sections(entries), 1))
    for key, value in {"CSP": content_security_policy(text), "SUITE": _suite_html(list(suites)),
                       "SECTIONS": body, "GENERATED": now,
                       "COUNTS": f"{n_ver} verified, {len(entries) - n_ver} reported"}.items():
        text = text.replace(f"<!--{key}-->", value)
    return text


def content_security_policy(template: str) -> str:
    """Nothing loads from anywhere; the only script that runs is the template's own (by hash),
    so markup that slipped into a cell could not run script even if escaping failed."""
    scripts = re.findall(r"<script>(.*?)</script>", template, re.DOTALL)
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
                      + "'" for s in scripts)
    return (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src {hashes}; "
            "base-uri 'none'; form-action 'none'")
