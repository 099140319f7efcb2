"""Board rows: verified results from ``leaderboard/results/*.json`` — single results and each set of
a suite result, numbers recomputed from their predictions — and the published numbers
(:mod:`.reported`) marked *reported*.

Every row belongs to a *section*: the dataset it was measured on, named by its fingerprint (a
release, a local build, a suite table) or, for a reported number, by the published dataset's name.
Rows are ranked only within their section, so a 9-row local build never ranks beside the release.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidValueError
from ..score.check import consistency_problems, recompute
from ..score.result import load_result, read_predictions
from .reported import pinned_fingerprints, reported_rows


@dataclass(frozen=True)
class Entry:
    name: str
    status: str                     # "verified" (scored by the harness) or "reported"
    dataset: str                    # which data the number is on
    accuracy: float                 # fraction in [0, 1]
    ci95: tuple[float, float] | None = None
    top5: float | None = None
    ece: float | None = None
    per_origin: dict[str, float] = field(default_factory=dict)
    uses_tta: bool | None = None
    extra_training_data: bool | None = None
    params: int | None = None
    resolution: int | None = None
    url: str | None = None
    source: str = ""                # result file, or where a reported number comes from
    note: str = ""
    section: str = ""               # rows are ranked only against rows of the same section
    protocol: str = ""
    tta_mode: str | None = None     # the harness's TTA mode when the result names one


def reported_entries() -> list[Entry]:
    pinned = pinned_fingerprints()
    return [Entry(name=r.name, status="reported", dataset=r.dataset, accuracy=r.accuracy / 100.0,
                  uses_tta=r.uses_tta, extra_training_data=r.extra_training_data,
                  resolution=r.resolution, source=r.source, note=r.note,
                  section=pinned.get(r.dataset, f"reported:{r.dataset}"))
            for r in reported_rows()]


def dataset_label(dataset: dict) -> str:
    rows = int(dataset["rows"])
    name = Path(str(dataset["id"])).name or str(dataset["id"])
    if dataset.get("version"):     # the board's sections are versions of a release
        name = f"{name} v{dataset['version']}"
    return f"{name} ({rows:,} rows, fp {str(dataset['fingerprint'])[:8]})"


def tta_mode(result) -> str | None:
    """The TTA mode a result records (``imhard score --tta MODE`` writes ``tta``: the mode's name,
    or an object with a ``mode``), else None."""
    tta = getattr(result, "tta", None)
    if isinstance(tta, dict):
        tta = tta.get("mode")
    return str(tta) if tta else None


def checked_entry(result, table, source: str, protocol: str = "") -> Entry:
    """A board row from a result and its predictions table, refused when its claims differ."""
    problems = consistency_problems(result, table)
    if problems:
        raise InvalidValueError(f"{source} does not match its predictions: {'; '.join(problems)}")
    m, origins = recompute(table)
    meta, mode = result.metadata, tta_mode(result)
    return Entry(
        name=result.name, status="verified", dataset=dataset_label(result.dataset),
        accuracy=m["accuracy"], ci95=tuple(m["accuracy_ci95"]), top5=m["top5_accuracy"],
        ece=m["ece"], per_origin={row["origin"]: row["accuracy"] for row in origins},
        uses_tta=True if mode else meta.get("uses_tta"),
        extra_training_data=meta.get("extra_training_data"), params=meta.get("params"),
        resolution=meta.get("resolution"), url=meta.get("url"), source=source,
        section=result.dataset["fingerprint"], protocol=protocol, tta_mode=mode)


def verified_entry(path: Path) -> Entry:
    """A board row whose numbers come from the result's predictions, not from its claims; a
    result file whose claims its predictions do not support is refused (also when it reached
    ``results/`` without ``imhard leaderboard add``)."""
    r = load_result(path)
    return checked_entry(r, read_predictions(path, r), path.name, "imagenet-hard")


def origins_of(entries: list[Entry]) -> list[str]:
    return sorted({o for e in entries for o in e.per_origin})
