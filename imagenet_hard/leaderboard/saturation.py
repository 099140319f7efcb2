"""Saturation watch: per dataset version, the best verified accuracy, how it rose, and whether
the version is still hard.

A version is *no longer hard* once a verified result's top-1 accuracy reaches the board's
threshold (``saturation_threshold`` in ``<board>/settings.json``, a fraction; default
:data:`DEFAULT_THRESHOLD`): time to mine a new version (see docs/keep-hard.md). The trend is the
record progression: each verified result, by the date it was scored, that beat every earlier one
on the same data. Only verified rows count (a reported number was not re-measured); rows are
grouped by the data they were scored on (the board's sections: a version's fingerprint).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidValueError
from ..files import write_json_atomic
from .entries import Entry

SETTINGS_FILE = "settings.json"
#: Top-1 accuracy at which a version is flagged as no longer hard. ImageNet-Hard's best
#: published number is 39% (EfficientNet-L2-NS at 800 px); half right is far from "hard".
DEFAULT_THRESHOLD = 0.5
MAX_SETTINGS_BYTES = 64 * 1024
SETTINGS = {"saturation_threshold": DEFAULT_THRESHOLD}


def _threshold(value, where) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 < value <= 1:
        raise InvalidValueError(f"{where}: saturation_threshold must be a number in (0, 1] "
                                f"(a top-1 accuracy as a fraction), got {value!r}")
    return float(value)


def read_settings(board_dir) -> dict:
    """The board's settings (:data:`SETTINGS` where the file is silent); a missing file is the
    defaults, a link or an oversized or malformed one is refused."""
    path = Path(board_dir) / SETTINGS_FILE
    if not path.exists() and not path.is_symlink():
        return dict(SETTINGS)
    if path.is_symlink() or not path.is_file():
        raise InvalidValueError(f"{path} must be a regular file (links are not followed)")
    with open(path, "rb") as f:
        data = f.read(MAX_SETTINGS_BYTES + 1)
    if len(data) > MAX_SETTINGS_BYTES:
        raise InvalidValueError(f"{path} is over {MAX_SETTINGS_BYTES} bytes; it holds a few "
                                "settings")
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise InvalidValueError(f"{path} is not JSON ({exc}); fix or delete it") from None
    if not isinstance(obj, dict) or set(obj) - set(SETTINGS):
        raise InvalidValueError(f"{path} must be a JSON object with the keys "
                                f"{', '.join(SETTINGS)}")
    out = {**SETTINGS, **obj}
    out["saturation_threshold"] = _threshold(out["saturation_threshold"], path)
    return out


def write_settings(board_dir, **changes) -> dict:
    """Change board settings (validated) and write the file; the settings now."""
    settings = read_settings(board_dir)
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise InvalidValueError(f"unknown board setting(s) {', '.join(sorted(unknown))}; known: "
                                f"{', '.join(SETTINGS)}")
    settings.update(changes)
    settings["saturation_threshold"] = _threshold(settings["saturation_threshold"],
                                                  "saturation_threshold")
    write_json_atomic(Path(board_dir) / SETTINGS_FILE, settings)
    return settings


@dataclass(frozen=True)
class Record:
    """A verified result that beat every earlier one on its data."""

    date: str
    name: str
    accuracy: float


@dataclass(frozen=True)
class VersionWatch:
    section: str          # the fingerprint the rows were scored on
    label: str            # the board's name for it (with its version)
    best: Record
    records: tuple[Record, ...]   # the progression, oldest first; the last is the best
    results: int          # verified rows on this data
    threshold: float

    @property
    def saturated(self) -> bool:
        return self.best.accuracy >= self.threshold


def _dates(board_dir) -> dict[str, str]:
    """result file name → the date it was scored (``date``; "" when the file has none)."""
    out = {}
    for p in sorted((Path(board_dir) / "results").glob("*.json")):
        if p.is_symlink():
            continue
        try:
            date = json.loads(p.read_text(encoding="utf-8")).get("date")
        except (OSError, ValueError, AttributeError):
            date = None
        out[p.name] = date if isinstance(date, str) else ""
    return out


def watch(entries: list[Entry], board_dir, threshold: float | None = None) -> list[VersionWatch]:
    """One :class:`VersionWatch` per section with verified single results, most results first."""
    if threshold is None:
        threshold = read_settings(board_dir)["saturation_threshold"]
    threshold = _threshold(threshold, "saturation threshold")
    dates = _dates(board_dir)
    by_section: dict[str, list[Entry]] = {}
    for e in entries:
        if e.status == "verified" and e.source in dates:   # suite sets have their own files
            by_section.setdefault(e.section, []).append(e)
    out = []
    for section, rows in by_section.items():
        rows.sort(key=lambda e: (dates[e.source], -e.accuracy, e.name))
        records: list[Record] = []
        for e in rows:
            if not records or e.accuracy > records[-1].accuracy:
                records.append(Record(dates[e.source][:10], e.name, e.accuracy))
        out.append(VersionWatch(section, rows[0].dataset, records[-1], tuple(records),
                                len(rows), threshold))
    out.sort(key=lambda w: (-w.results, w.label))
    return out


def _md(text) -> str:
    from .render import md_text

    return md_text(text)


def markdown(watches: list[VersionWatch]) -> str:
    """The board's "Is it still hard?" section (empty without verified results)."""
    if not watches:
        return ""
    t = watches[0].threshold
    lines = ["## Is it still hard? (saturation watch)", "",
             f"Best verified top-1 per dataset, and how it rose (each result that beat every "
             f"earlier one, by the date it was scored). A dataset is flagged **no longer hard** "
             f"at {100 * t:.0f}% (`saturation_threshold` in the board's `{SETTINGS_FILE}`).", "",
             "| Dataset | Verified results | Best top-1 % | Best model | Trend | Status |",
             "|---|---:|---:|---|---|---|"]
    for w in watches:
        trend = " → ".join(f"{100 * r.accuracy:.2f} ({r.date or 'undated'})" for r in w.records)
        status = "**no longer hard**" if w.saturated else "hard"
        lines.append(f"| {_md(w.label)} | {w.results} | {100 * w.best.accuracy:.2f} | "
                     f"{_md(w.best.name)} | {_md(trend)} | {status} |")
    return "\n".join(lines) + "\n"


def html_section(watches: list[VersionWatch]) -> str:
    """The same as an HTML table (every text escaped)."""
    import html

    if not watches:
        return ""
    rows = []
    for w in watches:
        trend = " → ".join(f"{100 * r.accuracy:.2f} ({r.date or 'undated'})" for r in w.records)
        status = ('<strong class="saturated">no longer hard</strong>' if w.saturated
                  else "hard")
        rows.append(f"<tr><td>{html.escape(w.label)}</td><td class=\"num\">{w.results}</td>"
                    f"<td class=\"num\">{100 * w.best.accuracy:.2f}</td>"
                    f"<td>{html.escape(w.best.name)}</td><td>{html.escape(trend)}</td>"
                    f"<td>{status}</td></tr>")
    t = watches[0].threshold
    return ("<section id=\"saturation\"><h2>Is it still hard?</h2>"
            f"<p>Best verified top-1 per dataset and how it rose; flagged <em>no longer hard</em> "
            f"at {100 * t:.0f}% (<code>saturation_threshold</code> in the board's "
            f"<code>{SETTINGS_FILE}</code>).</p><table><thead><tr><th>Dataset</th>"
            "<th>Verified results</th><th>Best top-1 %</th><th>Best model</th><th>Trend</th>"
            "<th>Status</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>")
