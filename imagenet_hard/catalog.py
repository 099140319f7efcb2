"""The source catalog: one typed name for every built table, and one grammar to select them.

A built table has one :class:`TableRef` (its source and, for ImageNet-C, the corruption and
severity). Every other form is derived from it here and nowhere else:

=================  =====================  ==============================================
form               ``imagenet-a``          ``imagenet-c/fog/3``
=================  =====================  ==============================================
``name``           ``imagenet-a``          ``imagenet-c/fog/3`` (CLI, suite set, results)
``stem``           ``imagenet_a``          ``imagenet_c_fog_3`` (file, module, id prefix)
``origin``         (the rows' own)         ``imagenet_c/fog/3`` (every row's origin)
``slug``           ``imagenet-a``          ``imagenet-c_fog_3`` (a suite's predictions file)
=================  =====================  ==============================================

:func:`parse` reads any of these spellings (``_`` and ``-`` interchangeable, any case) back into
the ref. :func:`select` is the one selection grammar of ``imhard mine --source`` and ``imhard
score --suite``: each item is a table's name, a glob over the built tables (``imagenet-c/*``,
``imagenet-c/fog/*``), or a family (``imagenet-c``, ``imagenet-c/fog``: the tables under it).
Mining refuses a bare family and names the glob instead, since mining 95 tables by accident
costs hours; a suite takes the family. A name that is not built is one error that says what to
run and which built names are close. Torch-free and quick: listing reads file names only.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from . import home as homes
from .corruptions.params import NAMES as CORRUPTIONS
from .corruptions.params import SEVERITIES
from .errors import MissingFileError, UnknownNameError, did_you_mean

#: The derived source whose tables are one per (corruption, severity).
IMAGENET_C = "imagenet-c"
#: The published benchmark as a suite set (a dataset folder or Hub id, not a source table).
IMAGENET_HARD = "imagenet-hard"
_C_STEM = "imagenet_c_"


class NotBuiltError(MissingFileError, UnknownNameError):
    """A selected source table that is not built (a missing file and an unknown name at once)."""


def file_stem(text: str) -> str:
    """The file form of a name or pattern: ``imagenet-c/fog/*`` → ``imagenet_c_fog_*``; no
    result reaches outside ``<home>/sources`` (``/`` and ``\\`` become ``_``)."""
    return text.strip().lower().replace("-", "_").replace("/", "_").replace("\\", "_")


@dataclass(frozen=True)
class TableRef:
    """One source table: its source and, for ImageNet-C, ``(corruption, severity)``."""

    source: str
    variant: tuple[str, int] | None = None

    @property
    def name(self) -> str:
        if self.variant is None:
            return self.source
        return f"{self.source}/{self.variant[0]}/{self.variant[1]}"

    @property
    def stem(self) -> str:
        return file_stem(self.name)

    @property
    def origin(self) -> str:
        """The origin of a variant's rows (``imagenet_c/fog/3``); a plain table's rows keep
        their own, so it is its stem."""
        if self.variant is None:
            return self.stem
        return f"{file_stem(self.source)}/{self.variant[0]}/{self.variant[1]}"

    @property
    def slug(self) -> str:
        return slug(self.name)

    def path(self, home=None) -> Path:
        return homes.sources_dir(home) / f"{self.stem}.parquet"

    def rejects_path(self, home=None) -> Path:
        return homes.sources_dir(home) / f"{self.stem}.rejects.parquet"

    def build_command(self) -> str:
        if self.variant is None:
            return f"imhard build --source {self.source}"
        c, s = self.variant
        return f"imhard build --source {self.source} --corruptions {c} --severities {s}"

    def __str__(self) -> str:
        return self.name


def imagenet_c(corruption: str, severity: int) -> TableRef:
    return TableRef(IMAGENET_C, (corruption, int(severity)))


def slug(name: str) -> str:
    """A set name in a file name: ``imagenet-c/fog/3`` → ``imagenet-c_fog_3``."""
    return name.replace("/", "_")


def variant_of(stem: str) -> tuple[str, int] | None:
    """``imagenet_c_zoom_blur_5`` → ``("zoom_blur", 5)``; None when ``stem`` is no
    (known corruption, severity) table."""
    if not stem.startswith(_C_STEM):
        return None
    corruption, _, severity = stem.removeprefix(_C_STEM).rpartition("_")
    if corruption in CORRUPTIONS and severity.isdigit() and int(severity) in SEVERITIES:
        return corruption, int(severity)
    return None


def parse(text: str) -> TableRef:
    """The table ``text`` names, in any of its spellings (``imagenet_a``, ``IMAGENET-A``,
    ``imagenet-c/fog/3``, ``imagenet_c/fog/3``, ``imagenet_c_fog_3``, ``imagenet-c-fog-3``)."""
    stem = file_stem(text)
    variant = variant_of(stem)
    if variant is not None:
        return TableRef(IMAGENET_C, variant)
    return TableRef(text.strip().lower().replace("_", "-"))


def parse_origin(origin: str) -> tuple[str, int] | None:
    """``imagenet_c/fog/3`` (a row's origin) → ``("fog", 3)``; None for any other origin."""
    parts = origin.split("/")
    if len(parts) == 3 and parts[0] == file_stem(IMAGENET_C) and parts[1] in CORRUPTIONS \
            and parts[2] in {str(s) for s in SEVERITIES}:
        return parts[1], int(parts[2])
    return None


def built(home=None) -> list[TableRef]:
    """Every source table built in the data home, by file name (an ``imagenet_c_*`` file that
    names no known corruption and severity is not one)."""
    folder = homes.sources_dir(home)
    if not folder.is_dir():
        return []
    stems = sorted(p.stem for p in folder.glob("*.parquet") if not p.stem.endswith(".rejects"))
    refs = [parse(s) for s in stems]
    return [r for r in refs if r.variant is not None or not r.stem.startswith("imagenet_c")]


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def select(items: list[str], home=None, *, option: str = "--source",
           families: bool = True) -> list[TableRef]:
    """The built tables ``items`` select (see the module docstring), in the order given, each
    glob or family in file-name order, none twice. ``families=False``: a family is refused with
    the glob that selects it."""
    tables = built(home)
    out: list[TableRef] = []
    for item in items:
        if _glob(item):
            pattern = file_stem(item)
            hits = [r for r in tables if fnmatch.fnmatchcase(r.stem, pattern)]
            if not hits:
                raise MissingFileError(f"{option} pattern {item!r} matches no built source "
                                       f"table (built here: {_names(tables)})")
        else:
            ref = parse(item)
            under = [r for r in tables if _key(r.name).startswith(_key(item) + "/")]
            if ref.path(home).exists():
                hits = [ref]
            elif families and under and ref.variant is None:
                hits = under
            else:
                raise not_built(ref, tables, home, option, under if not families else ())
        out += [r for r in hits if r not in out]
    return out


def not_built(ref: TableRef, tables: list[TableRef], home=None, option: str = "--source",
              family: list[TableRef] | tuple = ()) -> NotBuiltError:
    """The one error for a table that is not built: what to run, what is built, what is close."""
    names = [t.name for t in tables]
    hint = (f"; to select its {len(family)} tables pass {option} '{ref.name}/*'" if family
            else "")
    return NotBuiltError(
        f"source {ref.name!r} is not built ({ref.path(home)} does not exist); run "
        f"`{ref.build_command()}` first (built here: {_names(tables)}){hint}."
        f"{did_you_mean(ref.name, names)}")


def _names(tables: list[TableRef]) -> str:
    return ", ".join(t.name for t in tables) or "none"


__all__ = ["IMAGENET_C", "IMAGENET_HARD", "NotBuiltError", "TableRef", "built", "file_stem",
           "imagenet_c", "not_built", "parse", "parse_origin", "select", "slug", "variant_of"]
