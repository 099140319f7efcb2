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
from ..files import sha256_file
from ..score.check import claim_problems, recompute
from ..score.result import load_result, predictions_bytes, read_predictions
from .checked import CheckCache, Checked
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


#: The prediction columns :func:`recompute` and the host's pairing read.
RECOMPUTED = ["id", "origin", "top5_prob", "correct", "correct_top5"]


def checked_numbers(result_path: Path, result, part: str, cache: CheckCache | None = None,
                    result_sha: str | None = None) -> Checked:
    """The numbers recomputed from ``result``'s predictions (``part``: which set of the result
    file, "" for a single result), after checking the predictions' SHA-256 against the result.
    With ``cache``, numbers recomputed from these very bytes in an earlier build are reused
    (:mod:`.checked`); the hash check is made either way."""
    checked_file = predictions_bytes(result_path, result)
    key = (CheckCache.entry_key(result_sha, part, result.predictions["sha256"],
                                result.dataset["fingerprint"])
           if cache is not None and result_sha else None)
    hit = cache.get(key) if key else None
    if hit is not None:
        return hit
    # every column but top5, which no number the board shows depends on
    table = read_predictions(result_path, result, checked_file, columns=RECOMPUTED)
    m, origins = recompute(table)
    checked = Checked(m, origins, table.num_rows, table.column("id").combine_chunks(),
                      table.column("correct").to_numpy(zero_copy_only=False).astype(bool))
    if key:
        cache.put(key, checked)
    return checked


def checked_entry(result, checked: Checked, source: str, protocol: str = "") -> Entry:
    """A board row from a result and the numbers its predictions give, refused when its claims
    differ."""
    problems = claim_problems(result, checked.metrics, checked.origins, checked.rows)
    if problems:
        raise InvalidValueError(f"{source} does not match its predictions: {'; '.join(problems)}")
    m, origins = checked.metrics, checked.origins
    meta, mode = result.metadata, tta_mode(result)
    return Entry(
        name=result.name, status="verified", dataset=dataset_label(result.dataset),
        accuracy=m["accuracy"], ci95=tuple(m["accuracy_ci95"]), top5=m["top5_accuracy"],
        ece=m["ece"], per_origin={row["origin"]: row["accuracy"] for row in origins},
        uses_tta=True if mode else meta.get("uses_tta"),
        extra_training_data=meta.get("extra_training_data"), params=meta.get("params"),
        resolution=meta.get("resolution"), url=meta.get("url"), source=source,
        section=result.dataset["fingerprint"], protocol=protocol, tta_mode=mode)


def verified_entry(path: Path, cache: CheckCache | None = None,
                   columns: dict | None = None) -> Entry:
    """A board row whose numbers come from the result's predictions, not from its claims; a
    result file whose claims its predictions do not support is refused (also when it reached
    ``results/`` without ``imhard leaderboard add``). ``columns`` receives the checked numbers
    and columns under the file's name."""
    r = load_result(path)
    checked = checked_numbers(path, r, "", cache, sha256_file(path) if cache else None)
    if columns is not None:
        columns[path.name] = checked
    return checked_entry(r, checked, path.name, "imagenet-hard")


def origins_of(entries: list[Entry]) -> list[str]:
    return sorted({o for e in entries for o in e.per_origin})
