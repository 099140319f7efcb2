"""Board rows: verified results from ``leaderboard/results/*.json`` (numbers recomputed from
their predictions) and the published numbers (``imagenet_hard/data/leaderboard_reported.json``)
marked *reported*."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import InvalidValueError
from ..score.check import consistency_problems, recompute
from ..score.result import load_result, read_predictions


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
    tta: str | None = None          # the harness's test-time augmentation mode (score --tta)
    extra_training_data: bool | None = None
    params: int | None = None
    resolution: int | None = None
    url: str | None = None
    source: str = ""                # result file, or where a reported number comes from
    note: str = ""


def reported_entries() -> list[Entry]:
    text = resources.files("imagenet_hard").joinpath("data", "leaderboard_reported.json").read_text(
        encoding="utf-8")
    return [Entry(name=r["name"], status="reported", dataset=r["dataset"],
                  accuracy=r["accuracy"] / 100.0, uses_tta=r["uses_tta"],
                  extra_training_data=r["extra_training_data"], resolution=r["resolution"],
                  source=r["source"], note=r.get("note", ""))
            for r in json.loads(text)["results"]]


def dataset_label(dataset: dict) -> str:
    rows = int(dataset["rows"])
    name = Path(str(dataset["id"])).name or str(dataset["id"])
    return f"{name} ({rows:,} rows, fp {str(dataset['fingerprint'])[:8]})"


def verified_entry(path: Path) -> Entry:
    """A board row whose numbers come from the result's predictions, not from its claims; a
    result file whose claims its predictions do not support is refused (also when it reached
    ``results/`` without ``imhard leaderboard add``)."""
    r = load_result(path)
    table = read_predictions(path, r)
    problems = consistency_problems(r, table)
    if problems:
        raise InvalidValueError(f"{path} does not match its predictions: {'; '.join(problems)}")
    m, origins = recompute(table)
    meta = r.metadata
    return Entry(
        name=r.name, status="verified", dataset=dataset_label(r.dataset), accuracy=m["accuracy"],
        ci95=tuple(m["accuracy_ci95"]), top5=m["top5_accuracy"], ece=m["ece"],
        per_origin={row["origin"]: row["accuracy"] for row in origins},
        uses_tta=True if r.tta else meta.get("uses_tta"), tta=(r.tta or {}).get("mode"),
        extra_training_data=meta.get("extra_training_data"),
        params=meta.get("params"), resolution=meta.get("resolution"), url=meta.get("url"),
        source=path.name,
    )


def collect(board_dir: str | Path, include_reported: bool = True) -> list[Entry]:
    """Every row of the board, best top-1 first (verified before reported on ties)."""
    results = sorted((Path(board_dir) / "results").glob("*.json"))
    entries = [verified_entry(p) for p in results]
    if include_reported:
        entries += reported_entries()
    return sorted(entries, key=lambda e: (-e.accuracy, e.status != "verified", e.name))


def origins_of(entries: list[Entry]) -> list[str]:
    return sorted({o for e in entries for o in e.per_origin})
