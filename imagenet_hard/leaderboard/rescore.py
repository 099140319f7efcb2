"""``imhard leaderboard rescore-on X.Y.Z``: carry verified results to a new version, exactly.

A result scored on an earlier version of the same ledger can be carried when its predictions
cover every row of the new version and no image of it was replaced in between. A model's answer
depends on the image alone, so its stored top-5 for each row is what a fresh scoring would give:
the numbers are recomputed from the stored predictions, restricted to the new version's rows and
judged against the new version's labels. Where no row was relabelled that judging changes no
flag (the issue's condition); where some were, the stored top-5 re-judge those rows exactly, and
the listing says how many. Any other verified result is listed as *needs re-scoring*, with the
reason. With ``write``, each carried result is
written beside the others as ``NAME.vX.Y.Z.json`` (+ predictions), naming the version it was
carried from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from ..errors import ImHardError, MissingFileError
from ..publish import releases
from ..score.check import recompute
from ..score.metrics import correctness
from ..score.result import load_result, predictions_path, read_predictions, write_predictions

CARRIED, NEEDS, ALREADY = "carried", "needs re-scoring", "scored on it"


@dataclass(frozen=True)
class Carry:
    source: str                  # the result file
    name: str
    status: str                  # CARRIED, NEEDS or ALREADY
    why: str = ""
    from_version: str | None = None
    old_accuracy: float | None = None
    accuracy: float | None = None
    metrics: dict | None = None
    per_origin: list | None = None
    written: Path | None = None


def _scored_on(result, ledger: releases.Ledger) -> releases.Release | None:
    fp = result.dataset.get("fingerprint")
    return next((r for r in reversed(ledger.releases) if r.fingerprint == fp), None)


def _carry_one(path: Path, target: releases.Release, ledger, folder: Path, rows_of, write: bool):
    try:
        result = load_result(path)
    except ImHardError as exc:
        return Carry(path.name, path.stem, NEEDS, f"not a single result ({exc})")
    base = dict(source=path.name, name=result.name)
    scored = _scored_on(result, ledger)
    if scored is None:
        return Carry(**base, status=NEEDS, why="scored on data this ledger does not hold "
                     f"(fingerprint {str(result.dataset.get('fingerprint'))[:12]}…)")
    base.update(from_version=scored.version, old_accuracy=result.metrics.get("accuracy"))
    if scored.version == target.version:
        return Carry(**base, status=ALREADY, accuracy=result.metrics.get("accuracy"))
    if result.dataset.get("scored") != result.dataset.get("rows"):
        return Carry(**base, status=NEEDS, why=f"scored {result.dataset.get('scored')} of "
                     f"{result.dataset.get('rows')} rows (--limit)")
    old, new = rows_of(scored.version), rows_of(target.version)
    table = read_predictions(path, result)
    ids = set(table.column("id").to_pylist())
    missing = [i for i in new if i not in ids]
    if missing:
        return Carry(**base, status=NEEDS, why=f"its predictions lack {len(missing)} rows of "
                     f"{target.version} (first: {missing[0]})")
    replaced = [i for i, r in new.items() if i in old and old[i].sha256 != r.sha256]
    if replaced:
        return Carry(**base, status=NEEDS, why=f"{len(replaced)} images replaced between "
                     f"{scored.version} and {target.version} (first: {replaced[0]})")
    relabelled = sum(1 for i, r in new.items() if i in old and old[i].label != r.label)
    kept = _judged(table.filter(pc.is_in(table.column("id"), value_set=_array(sorted(new)))), new)
    metrics, origins = recompute(kept)
    written = _write(path, result, kept, metrics, origins, scored, target) if write else None
    why = f"{relabelled} relabelled rows re-judged from the stored top-5" if relabelled else ""
    return Carry(**base, status=CARRIED, why=why, accuracy=metrics["accuracy"], metrics=metrics,
                 per_origin=origins, written=written)


def _judged(table, rows: dict):
    """The predictions with each row's origin and correct flags from the version's own rows."""
    import pyarrow as pa

    ids = table.column("id").to_pylist()
    c1, c5 = correctness(np.asarray(table.column("top5").to_pylist(), dtype=np.int64)
                         .reshape(len(ids), 5), [rows[i].label for i in ids])
    return table.set_column(table.schema.get_field_index("origin"), "origin",
                            pa.array([rows[i].origin for i in ids], pa.string())) \
        .set_column(table.schema.get_field_index("correct"), "correct", pa.array(c1)) \
        .set_column(table.schema.get_field_index("correct_top5"), "correct_top5", pa.array(c5))


def _array(values):
    import pyarrow as pa

    return pa.array(values, pa.string())


def _write(path: Path, result, table, metrics, origins, scored, target) -> Path:
    out = path.with_name(f"{path.name.removesuffix('.json')}.v{target.version}.json")
    pred = predictions_path(out)
    sha = write_predictions(pred, {name: table.column(name).to_pylist()
                                   for name in table.column_names})
    speed = result.metrics.get("images_per_s")
    carried = replace(
        result,
        dataset={**result.dataset, "fingerprint": target.fingerprint, "rows": table.num_rows,
                 "scored": table.num_rows, "version": target.version,
                 "carried_from": {"version": scored.version,
                                  "fingerprint": scored.fingerprint}},
        metrics={**metrics, **({"images_per_s": speed} if speed is not None else {})},
        per_origin=origins, predictions={"file": pred.name, "sha256": sha})
    carried.write(out)
    return out


def rescore_on(version: str, board_dir: str | os.PathLike = "leaderboard",
               dataset: str | os.PathLike | None = None, home=None,
               write: bool = False) -> list[Carry]:
    """Which verified results of ``board_dir/results`` carry to ``version`` of the versioned
    folder ``dataset`` (default ``<home>/dist/imagenet-hard``), with their recomputed numbers."""
    from ..publish import default_out

    folder = Path(dataset).expanduser().resolve() if dataset else default_out(home)
    ledger = releases.read_ledger(folder)
    target = ledger.get(version) if ledger.releases else None
    if target is None:
        known = ", ".join(r.version for r in ledger.releases) or "none: it is not versioned"
        raise MissingFileError(f"{folder} has no version {releases.version_text(version)} "
                               f"(versions: {known}); publish it with `imhard publish --version`")
    cache: dict[str, dict] = {}

    def rows_of(v: str):
        if v not in cache:
            cache[v] = releases.read_rows(releases.version_folder(folder, ledger, v))
        return cache[v]

    results = Path(board_dir) / "results"
    paths = sorted(p for p in results.glob("*.json")
                   if not p.name.endswith(f".v{target.version}.json")) if results.is_dir() else []
    return [_carry_one(p, target, ledger, folder, rows_of, write) for p in paths]


def format_carries(carries: list[Carry], version: str) -> str:
    if not carries:
        return "no verified results to carry"
    lines = []
    for c in carries:
        if c.status == CARRIED:
            dest = f" → {c.written.name}" if c.written else ""
            note = f" ({c.why})" if c.why else ""
            lines.append(f"carried           {c.name}: {c.old_accuracy:.2%} on {c.from_version} → "
                         f"{c.accuracy:.2%} on {version}{dest}{note}")
        elif c.status == ALREADY:
            lines.append(f"scored on {version}  {c.name}")
        else:
            lines.append(f"needs re-scoring  {c.name}: {c.why}")
    return "\n".join(lines)
