"""``publish --check``: reload a published folder with ``datasets`` and verify every promise.

Schema (the Hugging Face features), shard naming, counts against the card, labels in 0..999,
that every image decodes (and carries its source's licence rules: ObjectNet's red border), unique
ids, the card byte for byte against the record publish wrote into it (:func:`card.seal`), and the
fingerprint against ``fingerprint.txt`` and the card. In a versioned folder, the ledger too
(:func:`releases.check_ledger`: its digests, every version's data, every change, the rule).
Problems are collected, not raised, so one run lists all.
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ImHardError
from ..files import sha256_bytes
from ..fingerprint import fingerprint
from ..imaging import has_border, licence_rules
from ..labels import NUM_CLASSES
from ..pixels import open_image, reorients
from ..records import id_source
from . import card, releases
from .folder import FINGERPRINT_FILE, README
from .shards import DATA_DIR, SHARD_RE, SPLIT, features


@dataclass
class CheckReport:
    folder: Path
    rows: int = 0
    by_origin: dict[str, int] = field(default_factory=dict)
    fingerprint: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_shard_names(folder: Path, report: CheckReport) -> None:
    names = sorted(p.name for p in (folder / DATA_DIR).glob("*.parquet"))
    if not names:
        report.problems.append(f"no parquet shards under {folder / DATA_DIR}")
        return
    parsed = [SHARD_RE.match(n) for n in names]
    bad = [n for n, m in zip(names, parsed, strict=True) if not m]
    if bad:
        report.problems.append(f"unexpected files in {DATA_DIR}/: {', '.join(bad)}")
    counts = {int(m.group(2)) for m in parsed if m}
    indices = sorted(int(m.group(1)) for m in parsed if m)
    if len(counts) > 1 or (counts and indices != list(range(counts.pop()))):
        report.problems.append(f"shards are not a complete -NNNNN-of-MMMMM series: {', '.join(names)}")


def _check_image(data: bytes | None, rid: str, problems: list[str]) -> None:
    if not data:
        problems.append(f"{rid}: no image bytes")
        return
    try:
        im = open_image(data)
    except ImHardError as exc:
        problems.append(f"{rid}: image does not decode ({exc})")
        return
    if reorients(data):
        problems.append(f"{rid}: image carries an EXIF orientation tag, which `datasets` ≥ 2.19 "
                        "applies and the toolkit's image rule does not; publish it again")
    source = id_source(rid)
    if licence_rules(source).web_border and not has_border(im):
        problems.append(f"{rid}: image of {source} without the 1-pixel red border its licence "
                        "asks for")


def _check_row(row: dict, seen: set[str], report: CheckReport, prints: list) -> None:
    rid, labels, problems = row.get("id") or "?", row.get("label") or [], report.problems
    if rid in seen:
        problems.append(f"{rid}: id appears more than once")
    seen.add(rid)
    if not labels:
        problems.append(f"{rid}: empty label list")
    elif any(not 0 <= int(x) < NUM_CLASSES for x in labels):
        problems.append(f"{rid}: labels {labels} outside 0..{NUM_CLASSES - 1}")
    if len(row.get("english_label") or []) != len(labels):
        problems.append(f"{rid}: {len(labels)} labels but {len(row.get('english_label') or [])} english labels")
    if not row.get("origin"):
        problems.append(f"{rid}: empty origin")
    data = (row.get("image") or {}).get("bytes")
    _check_image(data, rid, problems)
    prints.append((rid, labels, sha256_bytes(data or b"")))


def _load(folder: Path, report: CheckReport):
    from unittest import mock

    import datasets

    try:
        ds = _stream(datasets, folder)
    except Exception as exc:  # whatever datasets raises, the folder does not load: say so
        report.problems.append(f"datasets cannot load {folder}: {type(exc).__name__}: {exc}")
        return None
    if ds.features != features():
        report.problems.append(f"features are {ds.features}, expected {features()}")
        return None
    with mock.patch.object(datasets.config, "TORCH_AVAILABLE", False):
        return ds.cast_column("image", datasets.Image(decode=False))


def _stream(datasets, folder: Path):
    """The folder's split as a stream. A stream keeps its epoch in a shared torch tensor whenever
    torch is installed; a check never hands it to torch, and importing torch costs ~0.9 GB and
    seconds, so datasets is told torch is absent while the stream is made."""
    from unittest import mock

    with mock.patch.object(datasets.config, "TORCH_AVAILABLE", False):
        return datasets.load_dataset(str(folder), split=SPLIT, streaming=True)


def _rows(folder: Path):
    """The shards' rows in order, 64 at a time, read with pyarrow once ``datasets`` has opened the
    folder. Its own stream reads ahead (pyarrow's pre-buffering, in threads): on a 15 MB shard it
    rose 45 MB by the first 1,000 rows, this reader 23 MB, flat after; shards reach 500 MB."""
    import pyarrow.parquet as pq

    for path in sorted((folder / DATA_DIR).glob("*.parquet")):
        for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=64,
                                                                         use_threads=False):
            yield from batch.to_pylist()


def _check_card(folder: Path, report: CheckReport, computed: str) -> None:
    data = (folder / README).read_bytes() if (folder / README).is_file() else b""
    readme = data.decode("utf-8", errors="replace")
    if not readme:
        report.problems.append(f"{README} is missing")
    run, intact = card.read_seal(data)
    if readme and not intact:
        again = f"imhard publish --run {shlex.quote(run or 'RUN')} --out {shlex.quote(str(folder))}"
        report.problems.append(f"{folder / README} is not the card `imhard publish` rendered (it "
                               f"was edited or written by hand); regenerate it with `{again}`")
    header = card.card_header(readme)
    splits = (header.get("dataset_info") or {}).get("splits") or []
    stated = next((s.get("num_examples") for s in splits if s.get("name") == SPLIT), None)
    if stated != report.rows:
        report.problems.append(f"card says {stated} rows in {SPLIT}, the shards hold {report.rows}")
    if card.card_origin_counts(readme) != report.by_origin:
        report.problems.append(f"card's per-origin counts {card.card_origin_counts(readme)} differ "
                               f"from the shards' {report.by_origin}")
    fp_file = folder / FINGERPRINT_FILE
    stored = fp_file.read_text(encoding="ascii").strip() if fp_file.is_file() else None
    if stored != computed:
        report.problems.append(f"fingerprint is {computed}, {FINGERPRINT_FILE} says {stored}")
    if computed not in readme:
        report.problems.append(f"the card does not state the fingerprint {computed}")


def check(folder: str | os.PathLike) -> CheckReport:
    """Verify a published folder; ``report.ok`` is False and ``report.problems`` lists why."""
    folder = Path(folder).expanduser().resolve()
    report = CheckReport(folder)
    if not folder.is_dir():
        report.problems.append(f"{folder} is not a folder")
        return report
    _check_shard_names(folder, report)
    ds = _load(folder, report) if not report.problems else None
    if ds is None:
        return report
    seen: set[str] = set()
    prints: list = []
    origins: Counter = Counter()
    versioned = releases.is_versioned(folder)
    keys: dict[str, releases.RowKey] = {}  # only a ledger needs every row's key
    try:
        for row in _rows(folder):
            _check_row(row, seen, report, prints)
            origins[row.get("origin")] += 1
            rid, labels, sha = prints[-1]
            if versioned:
                keys[rid] = releases.RowKey(rid, row.get("origin") or "",
                                            tuple(sorted(int(x) for x in labels)),
                                            tuple(row.get("english_label") or ()), sha)
    except Exception as exc:  # a corrupt shard fails mid-iteration
        report.problems.append(f"reading the rows failed: {type(exc).__name__}: {exc}")
        return report
    report.rows, report.by_origin = len(prints), dict(sorted(origins.items()))
    report.fingerprint = fingerprint(prints)
    _check_card(folder, report, report.fingerprint)
    if versioned:
        readme = (folder / README).read_text(encoding="utf-8", errors="replace") \
            if (folder / README).is_file() else ""
        report.problems += releases.check_ledger(folder, keys, readme)
    elif (folder / releases.CHANGES_FILE).exists() or (folder / releases.VERSIONS_DIR).exists():
        report.problems.append(f"{folder} holds {releases.CHANGES_FILE} or "
                               f"{releases.VERSIONS_DIR}/ but no {releases.RELEASES_FILE}: "
                               "the ledger was deleted")
    return report
