"""The sets a suite scores, found by name: every built source table (ImageNet-C: one set per
corruption and severity) and the published ImageNet-Hard.

A :class:`SuiteSet` holds what the parent needs: the rows in the order the child reads them, each
row's labels under the set's protocol (None: the protocol leaves the row out), the set's
fingerprint and where its images are for the child. The fingerprint names what a model is asked
and how it is judged: SHA-256 over the protocol's name and the dataset fingerprint
(:func:`imagenet_hard.fingerprint.fingerprint`) of the scored rows' ids, protocol labels and image
hashes. The published ImageNet-Hard keeps its own fingerprint, so a suite's ImageNet-Hard number
ranks with plain ``imhard score`` results on the same release.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ... import catalog
from ... import home as homes
from ...catalog import IMAGENET_HARD as IMAGENET_HARD_SET
from ...errors import MissingFileError
from ...fingerprint import fingerprint
from ...records import META_SOURCE, read_table, table_label_spaces
from ..protocols import IMAGENET_HARD, Protocol, corruption_of, protocol_for
from .images import images_key, table_images


@dataclass
class Rows:
    """The scored rows of a set, as the result checks read them (``ids``, ``labels``,
    ``origins``, ``len``)."""

    ids: list[str]
    labels: list[list[int]]
    origins: list[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class SuiteSet:
    name: str                               # "imagenet-a", "imagenet-c/fog/3", "imagenet-hard"
    protocol: Protocol
    source: str                             # table path (relative to the home) or dataset id
    ids: list[str]                          # every row, in the order the child reads images
    origins: list[str]
    labels: list[tuple[int, ...] | None]    # under the protocol; None: not scored
    fingerprint: str
    classes: tuple[int, ...] | None         # the top-5 is taken among these (None: all 1000)
    cache_key: str                          # names the prediction cache (with the submission)
    images: Callable[[], tuple[list[str], list[str]]] = field(repr=False)
    split: str = "table"
    label_files: tuple[str, ...] = ()       # where its labels are on disk (hidden from the child)

    @property
    def scored(self) -> list[int]:
        """Row indices the protocol scores."""
        return [i for i, lab in enumerate(self.labels) if lab is not None]

    def rows(self, indices: list[int] | None = None) -> Rows:
        idx = self.scored if indices is None else indices
        return Rows([self.ids[i] for i in idx], [list(self.labels[i]) for i in idx],
                    [self.origins[i] for i in idx])

    @property
    def corruption(self) -> tuple[str, int] | None:
        return corruption_of(self.origins[0]) if self.protocol.metric == "error" else None


def set_fingerprint(protocol: Protocol, ids, labels, shas) -> str:
    inner = fingerprint(zip(ids, labels, shas, strict=True))
    return hashlib.sha256(f"{protocol.name}\n{inner}".encode()).hexdigest()


def table_set(name: str, path: Path, home=None) -> SuiteSet:
    """The set of one source table under its protocol."""
    home = homes.data_home(home)
    table = read_table(path, "source table")
    cols = {c: table.column(c).to_pylist() for c in
            ("id", "origin", "path", "label", "label_space", "sha256", "label_paper")}
    if not cols["id"]:
        raise MissingFileError(f"source table {path} has no rows; rebuild it")
    source = (table.schema.metadata or {}).get(META_SOURCE, b"").decode() or path.stem
    protocol = protocol_for(source, cols["label_space"][0], cols["origin"][0])
    recorded = table_label_spaces(table)
    rows = [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
    labels = [protocol.labels(r) or None for r in rows]
    scored = [i for i, lab in enumerate(labels) if lab is not None]
    fp = set_fingerprint(protocol, [cols["id"][i] for i in scored], [labels[i] for i in scored],
                         [cols["sha256"][i] for i in scored])
    rel = path.relative_to(home).as_posix() if path.is_relative_to(home) else str(path)
    key = f"{images_key(cols['sha256'])[:16]}-{protocol.key(recorded)}"
    return SuiteSet(name=name, protocol=protocol, source=rel, ids=cols["id"],
                    origins=cols["origin"], labels=labels, fingerprint=fp,
                    classes=protocol.classes(recorded), cache_key=key,
                    images=lambda: table_images(cols["path"], cols["sha256"], rel, home),
                    label_files=(str(path),))


def published_set(dataset=None, split: str = "validation", home=None,
                  limit: int | None = None) -> SuiteSet:
    """The published ImageNet-Hard (a folder or Hub id) under today's protocol, unchanged; a plain
    ``imhard score`` scores it as a suite of one, its cache named by ``limit`` too."""
    from ..dataset import image_files, open_dataset

    sds = open_dataset(dataset, split, home)
    return SuiteSet(name=IMAGENET_HARD_SET, protocol=IMAGENET_HARD, source=sds.id,
                    ids=sds.ids, origins=sds.origins, labels=[tuple(x) for x in sds.labels],
                    fingerprint=sds.fingerprint, classes=None,
                    cache_key=f"{sds.fingerprint[:16]}-{split}-{limit or 'all'}",
                    images=lambda: image_files(sds, home), split=split,
                    label_files=tuple(sds.label_files()))


def built_tables(home=None) -> dict[str, Path]:
    """Every built source table by set name (:func:`imagenet_hard.catalog.built`), in
    :data:`SET_ORDER`."""
    return {r.name: r.path(home) for r in sorted(catalog.built(home), key=_order)}


#: The order of the robustness tables in the seeds; other sources follow, ImageNet-C last.
SET_ORDER = ("imagenet", "imagenet-real", "imagenet-a", "imagenet-r", "imagenet-sketch",
             "imagenet-v2", "objectnet")


def _order(ref: catalog.TableRef) -> tuple:
    known = SET_ORDER.index(ref.name) if ref.name in SET_ORDER else len(SET_ORDER)
    return known, ref.variant is not None, ref.name


def resolve_sets(names: list[str] | None = None, dataset=None, split: str = "validation",
                 home=None) -> list[SuiteSet]:
    """The sets to score: ``names`` (default: every built table plus the published
    ImageNet-Hard when it is there, or ``dataset`` when given)."""
    if names:
        tables = [n for n in names if catalog.parse(n).name != IMAGENET_HARD_SET]
        chosen = sorted(catalog.select(tables, home, option="--suite"), key=_order)
        published = len(tables) < len(names)  # opening it says what is missing, if anything
    else:
        chosen = sorted(catalog.built(home), key=_order)
        published = dataset is not None or (homes.dist_dir(home) / "imagenet-hard").is_dir()
    if not chosen and not published:
        raise MissingFileError("no set to score: build a source first (`imhard build --source "
                               "sample` works offline) or publish ImageNet-Hard")
    out = [table_set(r.name, r.path(home), home) for r in chosen]
    return out + ([published_set(dataset, split, home)] if published else [])
