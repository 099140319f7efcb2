"""``imhard diff A B``: what changed between two releases, row by row, with the reasons.

A side is a folder in the release schema (any: one published before versions existed compares by
``id``, or by image hash where rows have no id), a version of a versioned folder (``1.0.0`` or
``v1.0.0``: its files under ``versions/`` or the folder itself), or a Hub revision
(``OWNER/NAME@v1.0.0``, fetched with ``huggingface_hub``). The changes come from the data; when
both sides are versions of one ledger, each change also gets the cause and reason the ledger
recorded when it was published.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import InvalidValueError, MissingFileError
from . import releases
from .releases import Change, Ledger, RowKey

_HUB_RE = re.compile(r"(?:hf://datasets/)?([\w.-]+/[\w.-]+)@([\w./-]+)")
#: What diff fetches of a Hub revision: the shards and the ledger, never anything else.
HUB_PATTERNS = ["data/*.parquet", releases.RELEASES_FILE, releases.CHANGES_FILE, "README.md"]


@dataclass(frozen=True)
class Side:
    spec: str                    # what was asked for
    folder: Path                 # where its shards are
    root: Path                   # the folder whose ledger it belongs to
    version: str | None
    ledger: Ledger
    rows: dict[str, RowKey]

    @property
    def fingerprint(self) -> str:
        return releases.rows_fingerprint(self.rows)

    def summary(self) -> dict:
        return {"spec": self.spec, "folder": str(self.folder), "version": self.version,
                "rows": len(self.rows), "by_origin": releases.by_origin(self.rows.values()),
                "fingerprint": self.fingerprint}


@dataclass(frozen=True)
class DiffResult:
    a: Side
    b: Side
    changes: list[Change]

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return releases.counts(self.changes)


def _folder_side(spec: str, folder: Path, version: str | None = None) -> Side:
    ledger = releases.read_ledger(folder)
    if version is None:
        version = ledger.latest.version if ledger.latest else None
        where = folder
    else:
        where = releases.version_folder(folder, ledger, version)
    return Side(spec, where, folder, version and releases.version_text(version), ledger,
                releases.read_rows(where))


def _hub_side(spec: str, repo_id: str, revision: str, home=None) -> Side:
    """A Hub revision, fetched as plain files (no cache links) under ``<home>/dist/.hub/``."""
    from huggingface_hub import snapshot_download

    from .. import home as homes

    where = homes.dist_dir(home) / ".hub" / repo_id.replace("/", "--") / revision.replace("/", "--")
    try:
        path = snapshot_download(repo_id, repo_type="dataset", revision=revision,
                                 allow_patterns=HUB_PATTERNS, local_dir=where)
    except Exception as exc:  # whatever the Hub client raises: one line naming the revision
        raise MissingFileError(f"cannot fetch {repo_id} at revision {revision} from the Hugging "
                               f"Face Hub ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    side = _folder_side(spec, Path(path))
    return side


def resolve(spec: str, dataset: str | os.PathLike | None = None, home=None) -> Side:
    """One side of a diff: a folder, a version of ``dataset`` (default the published folder of
    ``home``), or ``OWNER/NAME@REVISION`` on the Hub."""
    from .folder import default_out

    path = Path(spec).expanduser()
    if path.is_dir():
        return _folder_side(spec, path.resolve())
    try:
        version = releases.version_text(spec)
    except InvalidValueError:
        version = None
    if version is not None:
        root = Path(dataset).expanduser().resolve() if dataset else default_out(home)
        if not releases.is_versioned(root):
            raise MissingFileError(f"{root} holds no released versions, so it has no {spec}; "
                                   "give a folder, or --dataset DIR of a versioned folder")
        return _folder_side(spec, root, version)
    m = _HUB_RE.fullmatch(spec)
    if m:
        return _hub_side(spec, m.group(1), m.group(2), home)
    raise InvalidValueError(f"{spec!r} is not a folder, a version (1.0.0) or a Hub revision "
                            "(OWNER/NAME@v1.0.0)")


def _attributed(changes: list[Change], a: Side, b: Side) -> list[Change]:
    """The changes with the causes the ledger recorded between ``a`` and ``b`` (when ``b``'s
    ledger holds ``a``'s content before ``b``'s); unattributed otherwise."""
    ledger = b.ledger
    fps = [r.fingerprint for r in ledger.releases]
    if not ledger.releases or a.fingerprint not in fps or b.version is None:
        return changes
    start = max(i for i, fp in enumerate(fps) if fp == a.fingerprint)
    end = next((i for i, r in enumerate(ledger.releases) if r.version == b.version), -1)
    recorded: dict[tuple[str, str], Change] = {}
    for r in ledger.releases[start + 1:end + 1]:
        for c in ledger.changes_of(r.version):
            recorded[(c.id, c.kind)] = c
    out = []
    for c in changes:
        src = recorded.get((c.id, c.kind))
        out.append(replace(c, cause=src.cause, reason=src.reason, reviewer=src.reviewer,
                           version=src.version) if src else c)
    return out


def diff(a: str, b: str, dataset=None, home=None) -> DiffResult:
    """The row-level changes from ``a`` to ``b`` (see :func:`resolve` for what each may be)."""
    side_a, side_b = resolve(a, dataset, home), resolve(b, dataset, home)
    changes = releases.diff_rows(side_a.rows, side_b.rows, side_b.version or "")
    return DiffResult(side_a, side_b, _attributed(changes, side_a, side_b))


def _labels(names: list[str] | None, label: list[int] | None) -> str:
    return ", ".join(names or []) + f" {list(label or [])}"


def format_change(c: Change) -> str:
    """One line: kind, origin, id, labels (old → new in words for a relabel), cause: reason."""
    if c.kind == "relabelled":
        what = (f"{_labels(c.old_english_label, c.old_label)} → "
                f"{_labels(c.new_english_label, c.new_label)}")
    elif c.kind == "added":
        what = _labels(c.new_english_label, c.new_label)
    else:
        what = _labels(c.old_english_label, c.old_label)
    why = ""
    if c.cause:
        why = f" — {c.cause}" + (f": {c.reason}" if c.reason else "") + \
            (f" ({c.reviewer})" if c.reviewer else "")
    return f"{c.kind:<15} {c.origin:<16} {c.id}  {what}{why}"


def format_diff(res: DiffResult, limit: int | None = 50) -> str:
    lines = []
    for name, side in (("A", res.a), ("B", res.b)):
        v = f"version {side.version}, " if side.version else ""
        lines.append(f"{name}: {side.spec} ({v}{len(side.rows):,} rows, fingerprint "
                     f"{side.fingerprint[:12]}…)")
    lines.append(f"{len(res.changes):,} changes: {releases.counts_text(res.changes)}")
    if res.changes:
        lines.append("")
        shown = res.changes if not limit else res.changes[:limit]
        lines += [format_change(c) for c in shown]
        if len(shown) < len(res.changes):
            lines.append(f"… and {len(res.changes) - len(shown):,} more (--limit 0 lists all)")
    return "\n".join(lines)


def diff_json(res: DiffResult, limit: int | None = None) -> dict:
    from dataclasses import asdict

    shown = res.changes if not limit else res.changes[:limit]
    return {"a": res.a.summary(), "b": res.b.summary(), "counts": res.counts,
            "total": len(res.changes), "changes": [asdict(c) for c in shown]}
