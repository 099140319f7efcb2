"""Versions of a published folder: the ``releases`` ledger, the ``changes`` table, the semver rule.

A versioned folder keeps every version it has published. The latest is the folder itself (``data/``,
``README.md``, ``fingerprint.txt``, ``origins.png``); each earlier one was moved, whole and
unchanged, to ``versions/vX.Y.Z/``. The card's YAML names one config per version
(``load_dataset(folder, "v1.0.0")``), and on the Hub each version is also a tag.

``releases.parquet`` holds one row per version (fingerprint, parent, rows per origin, mining runs
and protocols, date, the digest of the card's version-independent text) and ``changes.parquet``
one row per row-level change between a version and its parent (added, removed, relabelled, image
replaced; old and new labels; the review event or mining run that caused it; the reason). Each
ledger row carries ``ledger_sha256``, a digest chained over every earlier row and its changes,
and the card states the head of the chain, so an edit to either table shows in ``publish --check``.

The rule (:func:`required_bump`): a version that removes, relabels or replaces rows is a major
one; one that only adds rows, minor; one that changes only the card, a patch. The same content
under a new number is refused, and so is different content under a number already published.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InvalidValueError, MissingFileError
from ..files import sha256_bytes
from ..fingerprint import fingerprint
from ..labels import english_labels

RELEASES_FILE = "releases.parquet"
CHANGES_FILE = "changes.parquet"
VERSIONS_DIR = "versions"
KINDS = ("added", "removed", "relabelled", "image replaced")
#: Which part of the version number a kind of change needs at least.
_LEVEL_OF_KIND = {"added": "minor", "removed": "major", "relabelled": "major",
                  "image replaced": "major"}
LEVELS = ("patch", "minor", "major")
_VERSION_RE = re.compile(r"v?(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})")

RELEASES_SCHEMA = pa.schema([
    ("version", pa.string()),
    ("fingerprint", pa.string()),
    ("parent", pa.string()),
    ("rows", pa.int64()),
    ("by_origin", pa.list_(pa.struct([("origin", pa.string()), ("rows", pa.int64())]))),
    ("runs", pa.list_(pa.string())),
    ("protocols", pa.list_(pa.string())),
    ("date", pa.string()),
    ("card_sha256", pa.string()),
    ("changes", pa.int64()),
    ("ledger_sha256", pa.string()),
])

CHANGES_SCHEMA = pa.schema([
    ("version", pa.string()),
    ("id", pa.string()),
    ("origin", pa.string()),
    ("kind", pa.string()),
    ("old_label", pa.list_(pa.int64())),
    ("new_label", pa.list_(pa.int64())),
    ("old_english_label", pa.list_(pa.string())),
    ("new_english_label", pa.list_(pa.string())),
    ("cause", pa.string()),
    ("reason", pa.string()),
    ("reviewer", pa.string()),
])


# -- version numbers ---------------------------------------------------------------------------

def parse_version(text: str) -> tuple[int, int, int]:
    """``"1.2.3"`` or ``"v1.2.3"`` → ``(1, 2, 3)``."""
    m = _VERSION_RE.fullmatch(str(text).strip())
    if not m:
        raise InvalidValueError(f"version must be MAJOR.MINOR.PATCH (e.g. 1.0.0), got {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def version_text(text: str) -> str:
    """The canonical form, ``1.2.3`` (the ledger's); tags and configs add a ``v``."""
    return ".".join(str(x) for x in parse_version(text))


def tag(version: str) -> str:
    return f"v{version_text(version)}"


def bump_level(parent: str | None, version: str) -> str:
    """Which part ``version`` raises over ``parent``; refused unless it is the next number."""
    new = parse_version(version)
    if parent is None:
        return "major"
    old = parse_version(parent)
    nexts = {"major": (old[0] + 1, 0, 0), "minor": (old[0], old[1] + 1, 0),
             "patch": (old[0], old[1], old[2] + 1)}
    for level, number in nexts.items():
        if new == number:
            return level
    raise InvalidValueError(
        f"version {version_text(version)} does not follow {parent}: the next is "
        f"{'.'.join(map(str, nexts['major']))} (rows removed or relabelled), "
        f"{'.'.join(map(str, nexts['minor']))} (rows added) or "
        f"{'.'.join(map(str, nexts['patch']))} (the card only)")


def required_bump(changes: Iterable[Change], card_changed: bool) -> str | None:
    """The least level these changes need; None when nothing changed at all."""
    levels = {_LEVEL_OF_KIND[c.kind] for c in changes}
    for level in ("major", "minor"):
        if level in levels:
            return level
    return "patch" if card_changed else None


# -- rows of a folder --------------------------------------------------------------------------

@dataclass(frozen=True)
class RowKey:
    """What a row-level comparison needs of one published row."""

    id: str
    origin: str
    label: tuple[int, ...]
    english_label: tuple[str, ...]
    sha256: str                     # of the image bytes as stored


def shard_files(folder: Path) -> list[Path]:
    """A release folder's ``validation`` shards (any parquet under ``data/`` when none is named
    so); links are refused, since a folder may come from a stranger."""
    data = folder / "data"
    if folder.is_symlink():
        raise InvalidValueError(f"{folder} is a link; a release folder holds plain files only")
    if data.is_symlink() or not data.is_dir():
        raise MissingFileError(f"{folder} has no data/ folder of parquet shards; is it a "
                               "published ImageNet-Hard folder?")
    files = sorted(data.glob("validation-*.parquet")) or sorted(data.glob("*.parquet"))
    links = [p.name for p in files if p.is_symlink() or not p.is_file()]
    if links:
        raise InvalidValueError(f"{data} holds links or non-files ({', '.join(links[:3])}); "
                                "a release folder holds plain files only")
    if not files:
        raise MissingFileError(f"{data} holds no parquet shards")
    return files


def read_rows(folder: str | os.PathLike) -> dict[str, RowKey]:
    """Every row of a release folder by key: its ``id``, or ``sha256:<image hash>`` for folders
    without ids (the public release before ids), so any folder in the release schema compares."""
    out: dict[str, RowKey] = {}
    for path in shard_files(Path(folder)):
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        missing = {"image", "label"} - names
        if missing:
            raise InvalidValueError(f"{path} lacks columns {', '.join(sorted(missing))}; it is "
                                    "not in the release schema")
        cols = [c for c in ("id", "image", "label", "origin", "english_label") if c in names]
        for batch in pf.iter_batches(batch_size=64, columns=cols):
            for row in batch.to_pylist():
                image = row["image"] or {}
                sha = sha256_bytes(image.get("bytes") or b"")
                key = row.get("id") or f"sha256:{sha}"
                labels = tuple(sorted(int(x) for x in row["label"] or []))
                english = tuple(row.get("english_label") or english_labels(labels))
                out[key] = RowKey(key, row.get("origin") or "", labels, english, sha)
    return out


def rows_fingerprint(rows: dict[str, RowKey]) -> str:
    return fingerprint((r.id, r.label, r.sha256) for r in rows.values())


def by_origin(rows: Iterable[RowKey]) -> dict[str, int]:
    return dict(sorted(Counter(r.origin for r in rows).items()))


# -- changes -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    version: str
    id: str
    origin: str
    kind: str
    old_label: list[int] | None = None
    new_label: list[int] | None = None
    old_english_label: list[str] | None = None
    new_english_label: list[str] | None = None
    cause: str | None = None
    reason: str | None = None
    reviewer: str | None = None

    def key(self) -> tuple:
        """What the data alone determines (``publish --check`` recomputes it)."""
        return (self.version, self.id, self.kind, tuple(self.old_label or ()),
                tuple(self.new_label or ()))


def diff_rows(old: dict[str, RowKey], new: dict[str, RowKey], version: str = "") -> list[Change]:
    """Row-level changes from ``old`` to ``new``, sorted by kind, origin, id; causes left empty."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a is None:
            out.append(Change(version, key, b.origin, "added", None, list(b.label), None,
                              list(b.english_label)))
        elif b is None:
            out.append(Change(version, key, a.origin, "removed", list(a.label), None,
                              list(a.english_label), None))
        else:
            if a.label != b.label:
                out.append(Change(version, key, b.origin, "relabelled", list(a.label),
                                  list(b.label), list(a.english_label), list(b.english_label)))
            if a.sha256 != b.sha256:
                out.append(Change(version, key, b.origin, "image replaced", list(a.label),
                                  list(b.label), list(a.english_label), list(b.english_label)))
    out.sort(key=lambda c: (KINDS.index(c.kind), c.origin, c.id))
    return out


def counts(changes: Iterable[Change]) -> dict[str, dict[str, int]]:
    """kind → origin → changes, kinds in :data:`KINDS` order."""
    out: dict[str, Counter] = {}
    for c in changes:
        out.setdefault(c.kind, Counter())[c.origin] += 1
    return {k: dict(sorted(out[k].items())) for k in KINDS if k in out}


def counts_text(changes: Iterable[Change]) -> str:
    """``removed 3 (sample 3); relabelled 2 (sample 2)``, or ``no row changed``."""
    parts = [f"{kind} {sum(per.values()):,} ("
             + ", ".join(f"{o} {n:,}" for o, n in per.items()) + ")"
             for kind, per in counts(changes).items()]
    return "; ".join(parts) or "no row changed"


# -- the ledger --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Release:
    version: str
    fingerprint: str
    parent: str | None
    rows: int
    by_origin: dict[str, int]
    runs: list[str]
    protocols: list[str]
    date: str
    card_sha256: str
    changes: int
    ledger_sha256: str = ""

    def record(self) -> dict:
        out = asdict(self)
        out["by_origin"] = [{"origin": o, "rows": n} for o, n in sorted(self.by_origin.items())]
        return out


@dataclass
class Ledger:
    releases: list[Release] = field(default_factory=list)     # oldest first
    changes: list[Change] = field(default_factory=list)

    @property
    def latest(self) -> Release | None:
        return self.releases[-1] if self.releases else None

    def get(self, version: str) -> Release | None:
        v = version_text(version)
        return next((r for r in self.releases if r.version == v), None)

    def changes_of(self, version: str) -> list[Change]:
        return [c for c in self.changes if c.version == version]

    @property
    def head(self) -> str:
        return self.latest.ledger_sha256 if self.latest else ""


def chain_digest(previous: str, release: Release, changes: list[Change]) -> str:
    """The ledger digest of ``release``: SHA-256 over the previous digest, the row and its
    changes, as canonical JSON."""
    row = {k: v for k, v in release.record().items() if k != "ledger_sha256"}
    body = json.dumps({"previous": previous, "release": row,
                       "changes": [asdict(c) for c in changes]},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def sealed(ledger: Ledger, release: Release, changes: list[Change]) -> Ledger:
    """``ledger`` with ``release`` and its changes appended, its digest chained on."""
    digest = chain_digest(ledger.head, release, changes)
    release = Release(**{**asdict(release), "ledger_sha256": digest})
    return Ledger(ledger.releases + [release], ledger.changes + changes)


def is_versioned(folder: Path) -> bool:
    return (folder / RELEASES_FILE).is_file()


def _safe_file(path: Path) -> Path:
    if path.is_symlink() or not path.is_file():
        raise InvalidValueError(f"{path} is a link or not a file; a release folder holds plain "
                                "files only")
    return path


def read_ledger(folder: str | os.PathLike) -> Ledger:
    """The folder's ledger; empty for a folder published without versions."""
    folder = Path(folder)
    if not (folder / RELEASES_FILE).exists():
        return Ledger()
    try:
        rel = pq.read_table(_safe_file(folder / RELEASES_FILE))
        chg = pq.read_table(_safe_file(folder / CHANGES_FILE)) \
            if (folder / CHANGES_FILE).exists() else CHANGES_SCHEMA.empty_table()
        rel = rel.select(RELEASES_SCHEMA.names).cast(RELEASES_SCHEMA)
        chg = chg.select(CHANGES_SCHEMA.names).cast(CHANGES_SCHEMA)
    except (pa.ArrowException, KeyError, OSError) as exc:
        raise InvalidValueError(f"the ledger of {folder} does not read as a ledger "
                                f"({type(exc).__name__}: {exc}); publish the folder again") from None
    releases = []
    for r in rel.to_pylist():
        r["by_origin"] = {d["origin"]: d["rows"] for d in r["by_origin"] or []}
        releases.append(Release(**r))
    return Ledger(releases, [Change(**c) for c in chg.to_pylist()])


def write_ledger(folder: Path, ledger: Ledger) -> None:
    pq.write_table(pa.Table.from_pylist([r.record() for r in ledger.releases],
                                        schema=RELEASES_SCHEMA), folder / RELEASES_FILE)
    pq.write_table(pa.Table.from_pylist([asdict(c) for c in ledger.changes],
                                        schema=CHANGES_SCHEMA), folder / CHANGES_FILE)


def release_date(date: str | None = None) -> str:
    """``YYYY-MM-DD``: ``date``, else ``$SOURCE_DATE_EPOCH`` (reproducible builds), else today (UTC)."""
    if date:
        try:
            return dt.date.fromisoformat(date).isoformat()
        except ValueError:
            raise InvalidValueError(f"release date must be YYYY-MM-DD, got {date!r}") from None
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch and epoch.isdigit()
            else dt.datetime.now(dt.timezone.utc))
    return when.date().isoformat()


def version_folder(folder: Path, ledger: Ledger, version: str) -> Path:
    """Where ``version``'s files are: the folder itself for the latest, else ``versions/vX.Y.Z``."""
    v = version_text(version)
    if ledger.get(v) is None:
        known = ", ".join(r.version for r in ledger.releases) or "none"
        raise InvalidValueError(f"{folder} has no version {v} (versions: {known})")
    return folder if ledger.latest.version == v else folder / VERSIONS_DIR / tag(v)


def check_new_version(ledger: Ledger, version: str, fp: str, card_sha: str,
                      changes: list[Change]) -> str | None:
    """Refuse ``version`` unless the rule allows it over the ledger's latest; returns its parent.

    The same version with the same content is not refused here: the caller leaves the folder
    as it is (publishing is idempotent)."""
    v = version_text(version)
    latest = ledger.latest
    existing = ledger.get(v)
    if existing is not None:
        if existing is latest and existing.fingerprint == fp and existing.card_sha256 == card_sha:
            return latest.parent
        raise InvalidValueError(
            f"version {v} is already published (fingerprint {existing.fingerprint[:12]}…) and "
            f"this content differs (fingerprint {fp[:12]}…); a published version never changes: "
            f"publish it as the next version after {latest.version}")
    parent = latest.version if latest else None
    level = bump_level(parent, v)
    need = required_bump(changes, card_changed=latest is None or latest.card_sha256 != card_sha)
    if latest is not None and need is None:
        raise InvalidValueError(
            f"nothing changed since {latest.version} (same rows, labels, images and card, "
            f"fingerprint {fp[:12]}…); the same content is never published under a new number")
    if need is not None and LEVELS.index(level) < LEVELS.index(need):
        kinds = ", ".join(counts(changes)) or "the card changed"
        nxt = {"major": f"{parse_version(parent)[0] + 1}.0.0",
               "minor": f"{parse_version(parent)[0]}.{parse_version(parent)[1] + 1}.0"}[need]
        raise InvalidValueError(
            f"{v} is a {level} version but this release needs a {need} one ({kinds} since "
            f"{parent}: {counts_text(changes)}); publish it as {nxt}")
    return parent


# -- what the card says --------------------------------------------------------------------------

def configs_yaml(ledger: Ledger) -> str:
    """One ``configs`` entry per version (latest: ``data/``; earlier: ``versions/vX.Y.Z/data/``),
    indented as the template's ``configs`` list."""
    lines = []
    for r in reversed(ledger.releases):
        prefix = "" if r is ledger.latest else f"{VERSIONS_DIR}/{tag(r.version)}/"
        lines += [f"- config_name: {tag(r.version)}", "  data_files:",
                  "  - split: validation", f"    path: {prefix}data/validation-*"]
    return "\n".join(lines)


def changelog_markdown(ledger: Ledger) -> str:
    """The card's Versions section body: this version, how to load any, the changelog table."""
    if not ledger.releases:
        return ("This folder is **not a named version**: it was published without `--version`, "
                "so nothing records how it differs from any other. Publish it with "
                "`imhard publish --run RUN --version X.Y.Z` to give it a version and a changelog.")
    cur = ledger.latest
    parent = f"; parent version {cur.parent}" if cur.parent else "; the first version"
    lines = [
        f"This is version **{cur.version}** (tag `{tag(cur.version)}`), published {cur.date}"
        f"{parent}. Ledger digest (SHA-256): `{cur.ledger_sha256}`.",
        "",
        "Load a version by its config name, `load_dataset(\"<folder or OWNER/NAME>\", "
        f"\"{tag(cur.version)}\", split=\"validation\")`, or on the Hub by its tag, "
        f"`load_dataset(\"OWNER/NAME\", revision=\"{tag(cur.version)}\", split=\"validation\")`. "
        "Every result scored with `imhard score` names the version and the fingerprint.",
        "",
        "| version | date | rows | fingerprint | changes since the parent |",
        "|---|---|---:|---|---|",
    ]
    for r in reversed(ledger.releases):
        lines.append(f"| {r.version} | {r.date} | {r.rows:,} | `{r.fingerprint[:12]}` | "
                     f"{counts_text(ledger.changes_of(r.version))} |")
    lines += ["", f"Every change, with its id, old and new labels, cause and reason, is in "
              f"[`{CHANGES_FILE}`]({CHANGES_FILE}); the versions, with their mining runs and "
              f"protocols, in [`{RELEASES_FILE}`]({RELEASES_FILE}). "
              "`imhard diff A B` compares any two versions, folders or Hub revisions."]
    return "\n".join(lines)


# -- publish --check ---------------------------------------------------------------------------

def check_ledger(folder: Path, rows: dict[str, RowKey], readme: str) -> list[str]:
    """Problems of a versioned folder's ledger: every digest, every version's files and
    fingerprint, every change against the data, the rule, and what the card states."""
    try:
        ledger = read_ledger(folder)
    except InvalidValueError as exc:
        return [str(exc)]
    if not ledger.releases:
        return [f"{RELEASES_FILE} holds no version"]
    problems = []
    previous, parent = "", None
    for r in ledger.releases:
        if r.parent != parent:
            problems.append(f"{RELEASES_FILE}: {r.version} names parent {r.parent}, the ledger "
                            f"order says {parent}")
        digest = chain_digest(previous, r, ledger.changes_of(r.version))
        if digest != r.ledger_sha256:
            problems.append(f"{RELEASES_FILE}: the ledger digest of {r.version} is "
                            f"{r.ledger_sha256[:12]}…, its rows and changes give {digest[:12]}…: "
                            "the ledger was edited after publishing")
        previous, parent = r.ledger_sha256, r.version
    known = {r.version for r in ledger.releases}
    stray = sorted({c.version for c in ledger.changes} - known)
    if stray:
        problems.append(f"{CHANGES_FILE} holds changes of versions not in the ledger: {stray}")
    problems += _check_versions(folder, ledger, rows)
    if f"`{ledger.head}`" not in readme:
        problems.append(f"the card does not state the ledger digest {ledger.head[:12]}… of "
                        f"version {ledger.latest.version}")
    if f"version **{ledger.latest.version}**" not in readme:
        problems.append(f"the card does not say it is version {ledger.latest.version}")
    return problems


def _check_versions(folder: Path, ledger: Ledger, latest_rows: dict[str, RowKey]) -> list[str]:
    problems, prev_rows = [], None
    versions = folder / VERSIONS_DIR
    expected = {tag(r.version) for r in ledger.releases[:-1]}
    if versions.exists():
        extra = sorted(p.name for p in versions.iterdir() if p.name not in expected)
        if extra:
            problems.append(f"{versions} holds folders no ledger version names: {extra[:5]}")
    for r in ledger.releases:
        where = version_folder(folder, ledger, r.version)
        try:
            rows = latest_rows if where == folder else read_rows(where)
        except (InvalidValueError, MissingFileError, pa.ArrowException, OSError) as exc:
            problems.append(f"version {r.version}: {exc}")
            prev_rows = None
            continue
        fp = rows_fingerprint(rows)
        if fp != r.fingerprint:
            problems.append(f"version {r.version}: the ledger says fingerprint "
                            f"{r.fingerprint[:12]}…, its data in {where} gives {fp[:12]}…")
        if len(rows) != r.rows or by_origin(rows.values()) != r.by_origin:
            problems.append(f"version {r.version}: the ledger says {r.rows} rows "
                            f"{r.by_origin}, its data holds {len(rows)} {by_origin(rows.values())}")
        recorded = ledger.changes_of(r.version)
        if len(recorded) != r.changes:
            problems.append(f"version {r.version}: the ledger counts {r.changes} changes, "
                            f"{CHANGES_FILE} holds {len(recorded)}")
        if prev_rows is not None or r.parent is None:
            actual = {c.key() for c in diff_rows(prev_rows or {}, rows, r.version)}
            listed = {c.key() for c in recorded}
            if actual != listed:
                problems.append(
                    f"version {r.version}: {CHANGES_FILE} lists {len(listed)} changes, the data "
                    f"of it and its parent give {len(actual)} ({len(listed - actual)} listed "
                    f"but not in the data, {len(actual - listed)} in the data but not listed)")
        if r.parent is not None:
            need = required_bump(recorded, card_changed=True)
            level = None
            try:
                level = bump_level(r.parent, r.version)
            except InvalidValueError as exc:
                problems.append(f"version {r.version}: {exc}")
            if level and need and LEVELS.index(level) < LEVELS.index(need):
                problems.append(f"version {r.version} is a {level} version over {r.parent} but "
                                f"its changes need a {need} one")
        prev_rows = rows
    return problems


def version_of(dataset: str | os.PathLike, fp: str) -> str | None:
    """The version of a local folder (a versioned folder, or one of its ``versions/vX.Y.Z``)
    whose fingerprint is ``fp``; None for anything else (a Hub id, an unversioned folder)."""
    path = Path(dataset)
    if not path.is_dir():
        return None
    roots = [path] + ([path.parent.parent] if path.parent.name == VERSIONS_DIR else [])
    for root in roots:
        try:
            ledger = read_ledger(root)
        except InvalidValueError:
            return None
        match = next((r.version for r in ledger.releases if r.fingerprint == fp), None)
        if match:
            return match
    return None


def load_version(dataset: str | os.PathLike, version: str | None = None, split: str = "validation",
                 **kwargs):
    """``datasets.load_dataset`` of one version: for a folder by its config name (``datasets``
    ignores ``revision`` for local folders), for a Hub id by its tag; the latest without one."""
    import datasets

    if version is None:
        return datasets.load_dataset(str(dataset), split=split, **kwargs)
    if Path(dataset).expanduser().is_dir():
        return datasets.load_dataset(str(Path(dataset).expanduser()), tag(version), split=split,
                                     **kwargs)
    return datasets.load_dataset(str(dataset), revision=tag(version), split=split, **kwargs)
