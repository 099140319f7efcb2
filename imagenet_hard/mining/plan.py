"""What a mining run works on: the images of its sources, their label spaces, its shards, and the
record (``runs.RunRecord``) that pins its settings so a rerun resumes only the same work.

Each image is judged against the labels and label space its row has under the run's ObjectNet
rule (:func:`imagenet_hard.label_rules.objectnet_rule`); the source's own labels travel beside
them, since candidates are published with those.

Images from all sources are sorted by id and cut into shards of ``shard_size``
(:func:`imagenet_hard.jobs.split`); shard ``k`` holds sorted images ``k*shard_size …
(k+1)*shard_size - 1``, so the assignment depends only on the ids.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import catalog, jobs
from .. import home as homes
from ..errors import InvalidValueError
from ..label_rules import PAPER_SPACES, check_objectnet_rule, objectnet_rule
from ..labels import NUM_CLASSES, label_space_indices
from ..mining_protocol import MiningProtocol, recorded_math, resolve
from ..records import META_SOURCE, read_table, table_label_spaces
from . import order
from .runs import RunRecord


@dataclass(frozen=True)
class ImageRow:
    """One image to judge: the source-table fields mining reads."""

    id: str
    source: str
    origin: str
    path: str
    label: tuple[int, ...]
    label_space: str
    judged_label: tuple[int, ...] = ()   # under the run's ObjectNet rule; () = ``label``
    judged_space: str = ""               # "" = ``label_space``

    def __post_init__(self):
        if not self.judged_label:
            object.__setattr__(self, "judged_label", self.label)
        if not self.judged_space:
            object.__setattr__(self, "judged_space", self.label_space)


@dataclass(frozen=True)
class Workload:
    """Every image of a run's sources, sorted by id, and the label spaces it is judged in."""

    sources: tuple[str, ...]
    images: tuple[ImageRow, ...]
    spaces: dict[str, tuple[int, ...]] = field(default_factory=dict)
    home: Path = Path(".")  # the data home image paths are relative to
    objectnet_labels: str = "paper"

    def ids_sha256(self) -> str:
        h = hashlib.sha256()
        for row in self.images:
            h.update(row.id.encode("utf-8") + b"\n")
        return h.hexdigest()


def check_limit(limit) -> int:
    """``--limit``: a positive number of images."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidValueError(f"limit must be a positive number of images, got {limit!r}")
    return limit


def check_built(sources: list[str], home=None) -> list[str]:
    """The table file names ``sources`` select (:func:`imagenet_hard.catalog.select`), each one
    built; else one sentence on the first that is not (no table is read)."""
    return [ref.stem for ref in catalog.select(sources, home, families=False)]


def _read_source(name: str, home, objectnet_labels: str
                 ) -> tuple[list[ImageRow], dict[str, list[int]]]:
    path = catalog.parse(name).path(home)
    table = read_table(path, what=f"source table {name!r}")
    meta_name = (table.schema.metadata or {}).get(META_SOURCE)
    source = meta_name.decode() if meta_name else path.stem
    cols = table.select(["id", "origin", "path", "label", "label_space", "label_paper"])
    rows = []
    for r in cols.to_pylist():
        # checked here, before any run folder exists, so the judging loop reads only these rows
        homes.inside_home(home, r["path"], f"source table {name!r} row {r['id']!r}")
        label = tuple(int(x) for x in r["label"])
        judged = None
        if r["label_space"] in PAPER_SPACES:  # the only rows whose labels the rule changes
            judged = objectnet_rule(r, objectnet_labels)
        rows.append(ImageRow(id=r["id"], source=source, origin=r["origin"], path=r["path"],
                             label=label, label_space=r["label_space"],
                             judged_label=judged.label if judged else (),
                             judged_space=judged.label_space if judged else ""))
    return rows, table_label_spaces(table)


def load_workload(sources: list[str], home=None, objectnet_labels: str = "paper",
                  limit: int | None = None) -> Workload:
    """Read the source tables, check ids are unique across them, give each image its judged
    labels under ``objectnet_labels`` (see :mod:`imagenet_hard.label_rules`), resolve every
    label space they are judged in. ``limit`` keeps the first N images by id (a quick try; the
    run's ``images`` and ``ids_sha256`` pin the choice)."""
    objectnet_labels = check_objectnet_rule(objectnet_labels)
    names = check_built(sources, home)
    if not names:
        raise InvalidValueError("mining needs at least one --source")
    if len(set(names)) != len(names):
        raise InvalidValueError(f"a source is listed twice: {', '.join(sources)}")
    images: list[ImageRow] = []
    extra: dict[str, list[int]] = {}
    for name in names:
        rows, spaces = _read_source(name, home, objectnet_labels)
        for space, idx in spaces.items():
            if space in extra and sorted(extra[space]) != sorted(idx):
                raise InvalidValueError(
                    f"sources define label space {space!r} differently; mine them in separate runs"
                )
            extra[space] = idx
        images.extend(rows)
    images.sort(key=lambda r: r.id)
    dupes = [a.id for a, b in zip(images, images[1:], strict=False) if a.id == b.id]
    if dupes:
        raise InvalidValueError(f"{len(dupes)} ids occur in more than one source, e.g. {dupes[0]!r}")
    if limit is not None:
        images = images[:check_limit(limit)]
    used = sorted({r.judged_space for r in images})
    spaces = {s: label_space_indices(s, extra) for s in used}
    for s, idx in spaces.items():
        if not idx or not all(0 <= i < NUM_CLASSES for i in idx):
            raise InvalidValueError(f"label space {s!r} must hold class indices 0..999")
    return Workload(tuple(names), tuple(images), spaces, homes.data_home(home), objectnet_labels)


def default_run_name(judge_name: str, sources: list[str], exhaustive: bool) -> str:
    """``<judge>__<source>+<source>[__exhaustive]`` with anything unsafe in a file name as ``-``."""
    judge = re.sub(r"[^A-Za-z0-9._-]+", "-", judge_name).strip("-") or "judge"
    srcs = "+".join(catalog.file_stem(s) for s in sources)
    if len(srcs) > 120:  # many tables (imagenet-c/*): stay well inside a file name's 255 bytes
        digest = hashlib.sha256(srcs.encode()).hexdigest()[:12]
        srcs = f"{catalog.file_stem(sources[0])}+{len(sources) - 1}-more-{digest}"
    return f"{judge}__{srcs}" + ("__exhaustive" if exhaustive else "")


def run_record(judge_name: str, work: Workload, exhaustive: bool, shard_size: int,
               crop_order: order.CropOrder | None = None, protocol: MiningProtocol | None = None,
               weights: str | None = None, weights_sha256: str | None = None,
               math: str | None = None, compile: bool = False) -> RunRecord:
    """The ``run.json`` of a run of ``work`` under ``protocol`` (default: ``paper`` as it
    applies to a classifier on the CPU): what a resume must match. ``crop_order`` defaults to
    the heuristic; a learned one is recorded in full with its origin. ``math`` is how the judge
    computes (:func:`~imagenet_hard.mining_protocol.math_mode`; default: autocast at the
    protocol's precision); ``compile`` whether the judge runs through ``torch.compile``."""
    if protocol is None:
        protocol = resolve("classifier", "cpu", objectnet_labels=work.objectnet_labels)
    if protocol.objectnet_labels != work.objectnet_labels:
        raise InvalidValueError(f"the workload was read under ObjectNet rule "
                                f"{work.objectnet_labels!r}, the protocol says "
                                f"{protocol.objectnet_labels!r}")
    return RunRecord(
        judge=judge_name,
        sources=tuple(work.sources),
        exhaustive=bool(exhaustive),
        shard_size=int(shard_size),
        crop_order=(crop_order or order.heuristic_order()).describe(),
        images=len(work.images),
        shards=jobs.count(len(work.images), shard_size),
        ids_sha256=work.ids_sha256(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        protocol=protocol.name,
        normalization=protocol.normalization,
        precision=protocol.precision,
        objectnet_labels=protocol.objectnet_labels,
        protocol_overrides=protocol.overrides,
        weights=weights,
        weights_sha256=weights_sha256,
        math=recorded_math(protocol.precision, math),
        compile=bool(compile),
    )
