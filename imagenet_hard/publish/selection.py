"""Which candidates of a mining run are published, and what the review did to them.

Joins a mining run's candidates with the current review decisions and with the source tables
that say where each image lives. Default: only candidates whose current verdict is ``keep``;
``include_pending`` adds the undecided ones; a ``remove`` verdict always drops a row.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from .. import catalog
from .. import home as homes
from ..errors import InvalidValueError, MissingFileError
from ..imaging import NO_RULES, LicenceRules, licence_rules
from ..labels import english_labels
from ..mining import MiningRun, RunSummary, open_run
from ..records import read_table


@dataclass(frozen=True)
class PublishRow:
    """One image to publish: its record and where its original bytes are."""

    id: str
    source: str
    origin: str
    label: list[int]
    english_label: list[str]
    file: Path
    sha256: str                   # of the original file, from the source table
    rules: LicenceRules = NO_RULES   # its source's licence rules, applied when encoded


@dataclass
class Selection:
    """The rows to publish (sorted by origin, then id) and the review's account of the rest."""

    run: MiningRun
    rows: list[PublishRow]
    candidates: int
    kept: int
    removed: int
    pending: int
    include_pending: bool
    removed_by_reason: dict[str, int] = field(default_factory=dict)
    tags: dict[str, int] = field(default_factory=dict)     # hard-image kinds among published rows

    @property
    def sources(self) -> list[str]:
        return sorted({r.source for r in self.rows})

    @property
    def summary(self) -> RunSummary:
        return self.run.summary


def _current_verdicts(decisions: pa.Table | None) -> dict[str, dict]:
    """id → latest decision row (the review hands one row per id; take the latest if not)."""
    if decisions is None or decisions.num_rows == 0:
        return {}
    rows = decisions.to_pylist()
    rows.sort(key=lambda r: (r["at"] is not None, r["at"] or 0))
    return {r["id"]: r for r in rows}


def _source_index(source: str, home) -> dict[str, dict]:
    table = read_table(catalog.parse(source).path(home), what=f"source table {source!r}")
    cols = table.select(["id", "origin", "path", "label", "english_label", "sha256"]).to_pylist()
    return {r["id"]: r for r in cols}


def _publish_row(cand: dict, src: dict | None, home: Path, relabel: dict | None = None) -> PublishRow:
    if src is None:
        raise MissingFileError(
            f"candidate {cand['id']} is not in source table {cand['source']!r}; the source was "
            f"rebuilt after mining: rebuild it as it was or mine again"
        )
    if sorted(src["label"]) != sorted(cand["label"]):
        raise InvalidValueError(
            f"candidate {cand['id']} has labels {cand['label']} but its source table says "
            f"{src['label']}; mine the source again"
        )
    label, english = [int(x) for x in src["label"]], list(src["english_label"])
    if relabel is not None:   # review's relabel replaces the whole list
        label = sorted(int(x) for x in relabel["label"])
        english = english_labels(label)
    return PublishRow(
        id=cand["id"], source=cand["source"], origin=cand["origin"] or src["origin"],
        label=label, english_label=english,
        file=homes.inside_home(home, src["path"], f"source table {cand['source']!r} row "
                               f"{cand['id']!r}"),
        sha256=src["sha256"], rules=licence_rules(cand["source"]),
    )


def select(run: str | os.PathLike | MiningRun, decisions: pa.Table | None, *, include_pending: bool = False,
           home=None, relabels: dict[str, dict] | None = None) -> Selection:
    """The published rows of ``run`` given the review ``decisions`` (DECISION_SCHEMA rows) and
    ``relabels`` (id → the review's current relabel event, whose ``label`` replaces the row's)."""
    handle = open_run(run, home)
    home_dir = homes.data_home(home)
    cands = handle.candidates().to_pylist()
    cand_ids = {c["id"] for c in cands}
    verdicts = _current_verdicts(decisions)
    verdicts = {k: v for k, v in verdicts.items() if k in cand_ids}   # other runs' decisions
    removed = [v for v in verdicts.values() if v["verdict"] == "remove"]
    kept_ids = {k for k, v in verdicts.items() if v["verdict"] == "keep"}
    pending = len(cands) - len(verdicts)
    if not include_pending and cands and not kept_ids:
        raise InvalidValueError(
            f"run {handle.name} has {len(cands)} candidates and none is marked keep "
            f"({len(removed)} removed, {pending} not reviewed): review them with `imhard review`, "
            "or pass --include-pending to publish the unreviewed ones too"
        )
    chosen = [c for c in cands if c["id"] in kept_ids or (include_pending and c["id"] not in verdicts)]
    if not chosen:
        raise InvalidValueError(f"run {handle.name}: nothing to publish ({len(removed)} of "
                                f"{len(cands)} candidates removed by review)")
    indexes = {s: _source_index(s, home) for s in sorted({c["source"] for c in chosen})}
    relabels = relabels or {}
    rows = [_publish_row(c, indexes[c["source"]].get(c["id"]), home_dir, relabels.get(c["id"]))
            for c in chosen]
    rows.sort(key=lambda r: (r.origin, r.id))
    tags = Counter(t for r in rows for t in (verdicts.get(r.id, {}).get("tags") or []))
    return Selection(
        run=handle, rows=rows, candidates=len(cands),
        kept=len(kept_ids), removed=len(removed), pending=pending, include_pending=include_pending,
        removed_by_reason=dict(sorted(Counter(v["reason"] or "unspecified" for v in removed).items())),
        tags=dict(sorted(tags.items())),
    )
