"""Published numbers, shown as *reported* rows: the dataset card and the paper's Table 6, the
README table of the authors' repository, and the two results tables of their open_clip
sweep (``openclip_results.csv``, ``datacomp_results.csv``), kept as copies of the authors' files
under ``imagenet_hard/data/reported/`` with their repository, path and commit in
``imagenet_hard/data/leaderboard_reported.json``.

A row of the JSON that names a table row (``same_as``) holds the same number; the board shows it
once, citing both. A table row present in both CSVs with one number is shown once too.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from importlib import resources

from ..errors import InvalidValueError

DATA = "leaderboard_reported.json"


@dataclass(frozen=True)
class ReportedRow:
    name: str
    accuracy: float                     # percent, as published
    dataset: str                        # label of the data it was measured on
    source: str
    uses_tta: bool | None
    extra_training_data: bool | None
    resolution: int | None = None
    note: str = ""


def _text(name: str) -> str:
    return resources.files("imagenet_hard").joinpath("data", name).read_text(encoding="utf-8")


def reported_data() -> dict:
    return json.loads(_text(DATA))


def read_table(spec: dict) -> list[dict]:
    """One copied results table: rows of Model, Pretrained, Top-1 Accuracy (numbers as floats)."""
    rows = list(csv.DictReader(io.StringIO(_text(spec["file"]))))
    if len(rows) != spec["rows"]:
        raise InvalidValueError(f"{spec['file']} holds {len(rows)} rows, its provenance says "
                                f"{spec['rows']}; reinstall imagenet-hard")
    return [{"model": r["Model"], "pretrained": r["Pretrained"],
             "accuracy": float(r["Top-1 Accuracy"])} for r in rows]


def _cite(spec: dict) -> str:
    return f"{spec['repository']} {spec['path']} @ {spec['commit'][:7]}"


def _table_rows(data: dict, linked: dict) -> list[ReportedRow]:
    merged: dict[tuple[str, str], tuple[dict, list[dict]]] = {}
    for spec in data.get("tables", []):
        for row in read_table(spec):
            key = (row["model"], row["pretrained"], row["accuracy"])
            merged.setdefault(key, (row, []))[1].append(spec)
    out = []
    for (model, pretrained, acc), (_row, specs) in merged.items():
        sources = [_cite(s) for s in specs]
        if (model, pretrained) in linked:
            if linked[(model, pretrained)] != acc:
                raise InvalidValueError(f"reported row {model} {pretrained}: {acc} in the table, "
                                        f"{linked[(model, pretrained)]} in {DATA}")
            continue
        spec = specs[0]
        out.append(ReportedRow(
            name=f"OpenCLIP {model} ({pretrained})", accuracy=acc, dataset=spec["dataset"],
            source="; ".join(sources), uses_tta=spec["uses_tta"],
            extra_training_data=spec["extra_training_data"], note=spec["protocol"]))
    return out


def reported_rows() -> list[ReportedRow]:
    """Every reported row, each number once."""
    data = reported_data()
    linked = {(r["same_as"]["model"], r["same_as"]["pretrained"]): r["accuracy"]
              for r in data["results"] if r.get("same_as")}
    tables: dict[tuple[str, str], list[str]] = {}
    for spec in data.get("tables", []):
        for t in read_table(spec):
            tables.setdefault((t["model"], t["pretrained"]), []).append(_cite(spec))
    out = []
    for r in data["results"]:
        source = r["source"]
        if r.get("same_as"):
            key = (r["same_as"]["model"], r["same_as"]["pretrained"])
            source = "; ".join([source, *tables[key]])
        out.append(ReportedRow(name=r["name"], accuracy=r["accuracy"], dataset=r["dataset"],
                               source=source, uses_tta=r["uses_tta"],
                               extra_training_data=r["extra_training_data"],
                               resolution=r["resolution"], note=r.get("note", "")))
    return out + _table_rows(data, linked)


def pinned_fingerprints() -> dict[str, str]:
    """Reported dataset label → its fingerprint, for the datasets whose fingerprint is known
    (their reported rows then rank with verified results on that fingerprint)."""
    return {label: d["fingerprint"] for label, d in reported_data().get("datasets", {}).items()
            if d.get("fingerprint")}
