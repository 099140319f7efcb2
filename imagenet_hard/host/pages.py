"""What a hosted board adds to the leaderboard's page: the queue, paired significance between
neighbours of each ranking, and one comparison page per neighbouring pair.

The leaderboard's own ``index.html`` is built first (:func:`imagenet_hard.leaderboard.build_board`,
unchanged); this module inserts its sections before ``</main>`` and writes ``compare/*.html``.
Every text from a request or a result (file names, submitters, model names, reasons, image ids)
is HTML-escaped; the pages run no script, and the comparison pages carry a Content-Security-Policy
that loads nothing.
"""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

from ..files import write_bytes_atomic
from . import paired
from .requests import FAILED, FINISHED, PENDING, RUNNING

#: Requests the page lists at most (the newest; ``imhard host status`` shows them all).
QUEUE_ROWS = 200
MARKER = "<!--HOST-->"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
CSP = ("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
STYLE = """
  .sig { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; }
  .sig.yes { background:#dcfce7; color:#166534; } .sig.no { background:#f2f4f7; color:#475467; }
  .st { font-weight:600; } .st.FAILED { color:#b42318; } .st.FINISHED { color:#0f766e; }
  .st.RUNNING { color:#1d4ed8; } .st.PENDING { color:#667085; }
"""


def page_name(a: str, b: str) -> str:
    return f"{_SAFE.sub('_', a)}--{_SAFE.sub('_', b)}.html"


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def significance_html(ranked: dict[str, list[paired.Ranked]],
                      pairs: dict[str, list[paired.Paired]]) -> str:
    parts = []
    for section, rows in ranked.items():
        if len(rows) < 2:
            continue
        body = []
        for k, r in enumerate(rows):
            if k < len(rows) - 1:
                p, nxt = pairs[section][k], rows[k + 1]
                mark = "yes" if p.significant else "no"
                word = "significant" if p.significant else "not significant"
                vs = (f'<span class="sig {mark}" data-significant="{mark}">{word}</span> '
                      f"p = {p.p_value:.3g}; {p.a_only} vs {p.b_only} images only one gets "
                      f'(<a href="compare/{_e(page_name(r.key, nxt.key))}">compare</a>)')
            else:
                vs = "—"
            body.append(f'<tr data-key="{_e(r.key)}"><td class="num">{k + 1}</td>'
                        f"<td>{_e(r.name)}</td><td class=\"num\">{100 * r.accuracy:.2f}</td>"
                        f"<td>{vs}</td></tr>")
        parts.append(f"<h3>{_e(rows[0].label)}</h3>\n<div class=\"card scroll\">"
                     f'<table class="significance"><thead><tr><th>#</th><th>Model</th>'
                     f"<th>Top-1 %</th><th>vs the next row (McNemar, exact)</th></tr></thead>"
                     f"<tbody>\n" + "\n".join(body) + "\n</tbody></table></div>")
    if not parts:
        return ""
    return ('<h2 id="significance">Paired significance</h2>\n<p class="note">Verified rows on '
            "the same images, ranked; each row against the next: McNemar's exact test on the "
            f"images exactly one of the two gets right, significant when p &lt; {paired.ALPHA}."
            "</p>\n" + "\n".join(parts))


def queue_html(entries, refused, now: float | None = None) -> str:
    now = time.time() if now is None else now
    rows = []
    for e in sorted(entries, key=lambda e: (e.request.created, e.request.id),
                    reverse=True)[:QUEUE_ROWS]:
        st = e.status(now)
        detail = e.state.reason if st == FAILED else (e.state.result if st == FINISHED else "")
        req = e.request
        what = "ImageNet-Hard" if req.sets is None else "suite: " + ", ".join(req.sets)
        rows.append(f'<tr id="req-{_e(req.id)}" data-status="{st}"><td>{_e(req.id)}</td>'
                    f"<td>{_e(req.file_name)}</td><td>{_e(req.submitter)}</td>"
                    f"<td>{_e(what)}{' · TTA ' + _e(req.tta) if req.tta else ''}</td>"
                    f"<td>{_e(req.created)}</td><td class=\"st {st}\">{st}</td>"
                    f"<td>{_e(detail)}</td></tr>")
    rows += [f'<tr data-status="{FAILED}"><td>{_e(r.id)}</td><td></td><td></td><td></td><td></td>'
             f'<td class="st {FAILED}">{FAILED}</td><td>{_e(r.reason)}</td></tr>' for r in refused]
    counts = {s: sum(e.status(now) == s for e in entries) for s in (PENDING, RUNNING, FAILED,
                                                                   FINISHED)}
    summary = ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
    return ('<h2 id="queue">Queue</h2>\n<p class="note">' + _e(summary)
            + (f", {len(refused)} refused" if refused else "") + ". Submit with "
            "<code>imhard submit my_model.py --board BOARD</code>.</p>\n"
            '<div class="card scroll"><table class="queue"><thead><tr><th>Request</th>'
            "<th>File</th><th>Submitter</th><th>Asks for</th><th>Filed</th><th>Status</th>"
            "<th>Result or reason</th></tr></thead><tbody>\n" + "\n".join(rows)
            + "\n</tbody></table></div>")


def compare_page(a: paired.Ranked, b: paired.Ranked, p: paired.Paired) -> str:
    verdict = "significant" if p.significant else "not significant"

    def ids(xs):
        return ", ".join(f"<code>{_e(x)}</code>" for x in xs) or "none"

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{_e(a.name)} vs {_e(b.name)}</title>
<style>body {{ font:14px/1.45 system-ui,sans-serif; margin:28px 32px; color:#1d2433; }}
td, th {{ padding:6px 10px; border-bottom:1px solid #e4e7ec; text-align:left; }}
td.num {{ text-align:right; }} {STYLE}</style></head>
<body><p><a href="../index.html#significance">← the board</a></p>
<h1>{_e(a.name)} vs {_e(b.name)}</h1>
<p>{_e(a.label)} · {p.n:,} images both were scored on.
<span class="sig {'yes' if p.significant else 'no'}" data-significant="{'yes' if p.significant else 'no'}">{verdict}</span>
(McNemar's exact test, p = {p.p_value:.4g}).</p>
<table class="counts"><thead><tr><th></th><th>{_e(b.name)} right</th><th>{_e(b.name)} wrong</th></tr></thead>
<tbody><tr><th>{_e(a.name)} right</th><td class="num" id="both">{p.both}</td><td class="num" id="a-only">{p.a_only}</td></tr>
<tr><th>{_e(a.name)} wrong</th><td class="num" id="b-only">{p.b_only}</td><td class="num" id="neither">{p.neither}</td></tr></tbody></table>
<h2>Only {_e(a.name)} gets ({p.a_only})</h2><p class="examples" id="a-examples">{ids(p.a_examples)}</p>
<h2>Only {_e(b.name)} gets ({p.b_only})</h2><p class="examples" id="b-examples">{ids(p.b_examples)}</p>
</body></html>
"""


def write_compare_pages(board_dir: Path, ranked, pairs) -> list[Path]:
    folder = board_dir / "compare"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for section, rows in ranked.items():
        for (a, b), p in zip(zip(rows, rows[1:], strict=False), pairs[section], strict=False):
            dest, page = folder / page_name(a.key, b.key), compare_page(a, b, p).encode()
            # a rebuild after one new entry leaves most pairs as they were: reading a page is
            # far cheaper than replacing it
            if not _same_bytes(dest, page):
                write_bytes_atomic(dest, page)
            written.append(dest)
    keep = {w.name for w in written}
    for old in folder.glob("*.html"):
        if old.name not in keep:
            old.unlink()
    return written


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return not path.is_symlink() and path.is_file() and path.read_bytes() == data
    except OSError:
        return False


def compare_entries(board_dir: Path, a_key: str, b_key: str) -> tuple[Path, paired.Paired]:
    """A comparison page for any two verified entries of a board (by result file stem)."""
    from ..errors import UnknownNameError, unknown_name

    ranked = {r.key: r for r in paired.load_ranked(board_dir / "results")}
    for key in (a_key, b_key):
        if key not in ranked:
            raise unknown_name("verified entry", key, sorted(ranked))
    a, b = ranked[a_key], ranked[b_key]
    if a.section != b.section:
        raise UnknownNameError(f"{a_key} and {b_key} were scored on different datasets; compare "
                               "entries of one table")
    p = paired.compare(a.ids, a.correct, b.ids, b.correct)
    dest = write_bytes_atomic(board_dir / "compare" / page_name(a.key, b.key),
                              compare_page(a, b, p).encode())
    return dest, p


def add_host_parts(queue, board_dir: Path, built=None) -> dict:
    """Insert the queue and the significance tables into ``board_dir/index.html`` and write the
    comparison pages; returns the neighbour pairs by section."""
    ranked = paired.rankings(paired.load_ranked(board_dir / "results",
                                                getattr(built, "checked", None)))
    pairs = {s: paired.neighbours(rows) for s, rows in ranked.items()}
    write_compare_pages(board_dir, ranked, pairs)
    entries, refused = queue.snapshot() if queue is not None else ([], [])
    extra = (f"<style>{STYLE}</style>\n" + significance_html(ranked, pairs) + "\n"
             + queue_html(entries, refused))
    index = board_dir / "index.html"
    text = index.read_text(encoding="utf-8")
    if "</main>" not in text:
        raise ValueError(f"{index} has no </main>; rebuild it with `imhard leaderboard build`")
    head, tail = text.rsplit("</main>", 1)
    write_bytes_atomic(index, (head + extra + "\n</main>" + tail).encode("utf-8"))
    return pairs
