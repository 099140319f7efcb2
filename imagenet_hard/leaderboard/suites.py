"""The suite view: one row per suite result, one column per set (like the robustness tables of the
seeds: ImageNet val, ReaL, IN-A, IN-R, Sketch, V2, ObjectNet, ImageNet-C, ImageNet-Hard), each
cell the top-1 recomputed from the set's predictions, with its Wilson interval.

A column is a set *and* its fingerprint: two results that scored different builds of ImageNet-A
get two columns, so sorting a column never compares different data. ImageNet-C is summarised in
three columns keyed by the fingerprints of all its tables: the mean top-1 error over the
benchmark corruptions, over the held-out ones, and mCE relative to the board's AlexNet — the
suite result of the reference ``alexnet.py`` submission (same file SHA-256) on the same tables —
or "—" when there is none (the errors are then unnormalised).

A suite scored with test-time augmentation (``imhard score --suite --tta MODE``) is its own row,
"NAME (TTA MODE)", with the mode in its TTA column, as a TTA single result is on the board; its
sets' board rows carry the mode too. It never stands in for AlexNet: mCE normalises by AlexNet's
plain errors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from ..catalog import parse as parse_table
from ..files import sha256_file
from ..score.protocols import corruption_of, imagenet_c_summary
from ..score.result import load_suite
from .checked import CheckCache, Checked
from .entries import (
    Entry,
    checked_entry,
    checked_numbers,
    reported_entries,
    tta_mode,
    verified_entry,
)


@dataclass(frozen=True)
class Cell:
    accuracy: float
    ci95: tuple[float, float]
    top5: float


@dataclass
class SuiteRow:
    name: str
    source: str                         # result file
    sha256: str                         # the submission file's
    url: str | None
    uses_tta: bool | None
    extra_training_data: bool | None
    tta_mode: str | None = None         # the harness's TTA mode every set was scored with
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)   # (set, fingerprint)
    errors: dict[tuple[str, int], float] = field(default_factory=dict)
    error_fps: dict[tuple[str, int], str] = field(default_factory=dict)
    imagenet_c: dict | None = None      # aggregates, mCE against the board's AlexNet

    @property
    def imagenet_c_key(self) -> str | None:
        if not self.errors:
            return None
        text = "\n".join(f"{c}/{s} {fp}" for (c, s), fp in sorted(self.error_fps.items()))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Board:
    entries: list[Entry]
    suites: list[SuiteRow]
    checked: dict[str, Checked] = field(default_factory=dict)   # single results, by file name


def read_suite(path: Path, cache: CheckCache | None = None) -> tuple[list[Entry], SuiteRow]:
    """A suite result's board rows (one per set but ImageNet-C's tables) and its suite-view row;
    every set's claims are checked against its predictions."""
    r = load_suite(path)
    result_sha = sha256_file(path) if cache else None
    meta = r.metadata
    mode = tta_mode(r)
    entries, row = [], SuiteRow(r.name, path.name, r.submission["sha256"], meta.get("url"),
                                True if mode else meta.get("uses_tta"),
                                meta.get("extra_training_data"), tta_mode=mode)
    for k, entry in enumerate(r.sets):
        one = r.set_result(k)
        checked = checked_numbers(path, one, f"{k}:{entry['name']}", cache, result_sha)
        e = checked_entry(one, checked, f"{path.name} · {entry['name']}", entry["protocol"])
        d = one.dataset
        e = replace(e, dataset=f"{entry['name']} ({int(d['rows']):,} rows, fp "
                               f"{d['fingerprint'][:8]}) · {entry['protocol']}")
        if entry["protocol"] == "imagenet-c":
            c, s = corruption_of(parse_table(entry["name"]).origin)
            row.errors[(c, s)] = 1.0 - e.accuracy
            row.error_fps[(c, s)] = one.dataset["fingerprint"]
            continue
        row.cells[(entry["name"], one.dataset["fingerprint"])] = Cell(e.accuracy, e.ci95, e.top5)
        entries.append(e)
    return entries, row


def reference_alexnet_sha() -> str | None:
    """SHA-256 of the reference AlexNet submission this imagenet-hard ships."""
    ref = resources.files("imagenet_hard.submissions").joinpath("alexnet.py")
    with resources.as_file(ref) as f:
        return sha256_file(f) if Path(f).is_file() else None


def _imagenet_c(rows: list[SuiteRow]) -> None:
    """Fill each row's ImageNet-C aggregates; mCE only against an AlexNet on the same tables."""
    ref = reference_alexnet_sha()
    alexnets = {row.imagenet_c_key: row for row in rows
                if row.sha256 == ref and row.errors and row.tta_mode is None}
    for row in rows:
        if row.errors:
            base = alexnets.get(row.imagenet_c_key)
            row.imagenet_c = imagenet_c_summary(row.errors, base.errors if base else None)


def collect_board(board_dir: str | Path, include_reported: bool = True,
                  cache: CheckCache | None = None) -> Board:
    """Every board row (best first within each section) and every suite-view row; with
    ``cache``, numbers checked in an earlier build of the same bytes are reused."""
    entries, suites, checked = [], [], {}
    for p in sorted((Path(board_dir) / "results").glob("*.json")):
        if p.name.endswith(".suite.json"):
            rows, suite = read_suite(p, cache)
            entries += rows
            suites.append(suite)
        else:
            entries.append(verified_entry(p, cache, checked))
    if include_reported:
        entries += reported_entries()
    _imagenet_c(suites)
    entries.sort(key=lambda e: (e.section, -e.accuracy, e.status != "verified", e.name))
    return Board(entries, suites, checked)


@dataclass(frozen=True)
class Column:
    key: tuple[str, str]
    label: str


def suite_columns(rows: list[SuiteRow]) -> list[Column]:
    """One column per (set, fingerprint) in any suite row, in first-seen order; a set with more
    than one fingerprint shows the fingerprint in its label."""
    keys: list[tuple[str, str]] = []
    for row in rows:
        keys += [k for k in row.cells if k not in keys]
    names = [k[0] for k in keys]
    return [Column(k, k[0] if names.count(k[0]) == 1 else f"{k[0]} · fp {k[1][:8]}")
            for k in keys]


def imagenet_c_groups(rows: list[SuiteRow]) -> list[str]:
    """ImageNet-C column groups: one per set of tables (fingerprints) any row scored."""
    out: list[str] = []
    for row in rows:
        if row.imagenet_c_key and row.imagenet_c_key not in out:
            out.append(row.imagenet_c_key)
    return out


def collect(board_dir: str | Path, include_reported: bool = True) -> list[Entry]:
    """Every row of the board (suite sets included, ImageNet-C tables left to the suite view),
    best top-1 first within each section (verified before reported on ties)."""
    return collect_board(board_dir, include_reported).entries
