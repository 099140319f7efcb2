"""``publish``: a mining run plus review decisions → a complete dataset folder.

The folder (``data/validation-NNNNN-of-MMMMM.parquet``, ``README.md``, ``origins.png``,
``fingerprint.txt``) is written under a temporary name beside the destination and renamed into
place only when complete, so a crash never leaves a half-written release where a release was.
With a version (:mod:`.releases`) it also holds the ledger (``releases.parquet``,
``changes.parquet``) and every earlier version under ``versions/vX.Y.Z/``, hard-linked from the
folder being replaced (the bytes of a published version are never rewritten).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import home as homes
from ..errors import InvalidValueError
from ..files import sha256_bytes
from ..fingerprint import fingerprint
from . import card, releases
from .releases import Change, Ledger, Release, RowKey
from .selection import Selection, _current_verdicts, select
from .shards import (
    DATA_DIR,
    DEFAULT_MAX_SHARD_SIZE,
    SHARD_RE,
    encode_all,
    parse_shard_size,
    write_shards,
)

FINGERPRINT_FILE = "fingerprint.txt"
README = "README.md"
DEFAULT_NAME = "imagenet-hard"
#: What a published folder may hold; anything else means ``--out`` points at someone's files.
_OWN_ENTRIES = {README, DATA_DIR, card.CHART_NAME, FINGERPRINT_FILE, ".gitattributes",
                releases.RELEASES_FILE, releases.CHANGES_FILE, releases.VERSIONS_DIR}
#: What each version keeps under ``versions/vX.Y.Z/`` when a newer one is published.
_VERSION_ENTRIES = (README, DATA_DIR, card.CHART_NAME, FINGERPRINT_FILE)


@dataclass(frozen=True)
class PublishResult:
    out: Path
    shards: list[Path]
    rows: int
    by_origin: dict[str, int]
    fingerprint: str
    selection: Selection
    version: str | None = None
    changes: list[Change] | None = None       # of this version against its parent
    unchanged: bool = False                   # the version was already published as it is


def default_out(home=None) -> Path:
    """``<home>/dist/imagenet-hard``: the folder name ``load_dataset("imagenet-hard")`` finds."""
    return homes.dist_dir(home) / DEFAULT_NAME


def _check_replaceable(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InvalidValueError(f"--out {out} is a file; give a folder")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in _OWN_ENTRIES)
    data = out / DATA_DIR
    if data.is_dir():
        foreign += sorted(f"{DATA_DIR}/{p.name}" for p in data.iterdir() if not SHARD_RE.match(p.name))
    if foreign:
        raise InvalidValueError(
            f"--out {out} holds files a published folder does not ({', '.join(foreign[:5])}); "
            "publishing replaces the whole folder, so choose an empty or new one")


def _replace(tmp: Path, out: Path) -> None:
    """Put the finished folder in place; the old release is removed only after the swap."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old)


def _stats(shards: list[Path], origins: list[str]) -> card.Stats:
    metas = [pq.read_metadata(p) for p in shards]
    return card.Stats(
        num_rows=sum(m.num_rows for m in metas),
        num_shards=len(shards),
        num_bytes=sum(m.row_group(i).total_byte_size for m in metas for i in range(m.num_row_groups)),
        download_size=sum(p.stat().st_size for p in shards),
        by_origin=dict(sorted(Counter(origins).items())),
    )


def publish(run: str | os.PathLike, decisions: pa.Table | None = None,
            out: str | os.PathLike | None = None, *, include_pending: bool = False,
            max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE, home=None,
            template: str | os.PathLike | None = None, version: str | None = None,
            relabels: dict[str, dict] | None = None, date: str | None = None) -> PublishResult:
    """Publish the candidates of ``run`` that review kept (and, with ``include_pending``, the
    undecided ones) into ``out`` (default ``<home>/dist/imagenet-hard``).

    ``decisions`` holds the current review verdicts (records.DECISION_SCHEMA, one row per id,
    with ``seq`` when the changes should name the review event), as
    ``imagenet_hard.review.current_decisions()`` returns them; ``None`` means none yet.
    ``relabels`` (``imagenet_hard.review.current_relabels()``) replace labels. ``version``
    (``X.Y.Z``) makes the folder a release: the ledger gets a row and the changes against the
    previous version, under the semver rule of :mod:`.releases`; ``date`` (``YYYY-MM-DD``)
    defaults to ``$SOURCE_DATE_EPOCH`` or today.
    """
    max_bytes = parse_shard_size(max_shard_size)
    if version is not None:
        version = releases.version_text(version)
    sel = select(run, decisions, include_pending=include_pending, home=home, relabels=relabels)
    out = Path(out).expanduser().resolve() if out else default_out(home)
    _check_replaceable(out)
    ledger = releases.read_ledger(out) if out.is_dir() else Ledger()
    if ledger.releases and version is None:
        raise InvalidValueError(
            f"{out} holds released versions (latest {ledger.latest.version}); publishing without "
            "--version would drop them: give --version X.Y.Z")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        tmp.chmod(0o755)
        shards, prints = write_shards(encode_all(sel.rows), tmp / DATA_DIR, max_bytes)
        fp = fingerprint(prints)
        stats = _stats(shards, [r.origin for r in sel.rows])
        release = None
        if version is None:
            text = card.render(sel, stats, fp, template)
        else:
            release = _release(out, ledger, version, sel, stats, fp, prints, template, decisions,
                               relabels or {}, date)
            if release is None:        # this very version is already published: leave it
                return PublishResult(out=out, shards=releases.shard_files(out),
                                     rows=stats.num_rows, by_origin=stats.by_origin,
                                     fingerprint=fp, selection=sel, version=version,
                                     changes=ledger.changes_of(version), unchanged=True)
            new_ledger, text = release
            releases.write_ledger(tmp, new_ledger)
            _keep_versions(out, tmp, ledger)
        (tmp / README).write_text(text, encoding="utf-8")
        (tmp / card.CHART_NAME).write_bytes(card.origin_chart(stats.by_origin))
        (tmp / FINGERPRINT_FILE).write_text(fp + "\n", encoding="ascii")
        _replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return PublishResult(out=out, shards=[out / DATA_DIR / p.name for p in shards],
                         rows=stats.num_rows, by_origin=stats.by_origin, fingerprint=fp,
                         selection=sel, version=version,
                         changes=release[0].changes_of(version) if release else None)


def _release(out: Path, ledger: Ledger, version: str, sel: Selection, stats: card.Stats,
             fp: str, prints, template, decisions, relabels: dict, date) -> tuple[Ledger, str] | None:
    """The ledger with ``version`` appended and the card that states it; None when ``version``
    is already published with this very content."""
    neutral = card.render(sel, stats, fp, template, versions=("", ""))
    card_sha = sha256_bytes(neutral.encode("utf-8"))
    parent_rows: dict[str, RowKey] = {}
    if ledger.latest is not None:
        parent_rows = releases.read_rows(out)
        if releases.rows_fingerprint(parent_rows) != ledger.latest.fingerprint:
            raise InvalidValueError(
                f"{out}'s data no longer has version {ledger.latest.version}'s fingerprint; "
                f"`imhard publish --check {out}` says what changed; restore it before publishing")
    shas = {rid: sha for rid, _, sha in prints}
    new_rows = {r.id: RowKey(r.id, r.origin, tuple(sorted(r.label)), tuple(r.english_label),
                             shas[r.id]) for r in sel.rows}
    changes = _attribute(releases.diff_rows(parent_rows, new_rows, version), sel, decisions,
                         relabels)
    parent = releases.check_new_version(ledger, version, fp, card_sha, changes)
    if ledger.get(version) is not None:
        return None
    proto = sel.run.record.protocol_record()
    rel = Release(version=version, fingerprint=fp, parent=parent, rows=stats.num_rows,
                  by_origin=stats.by_origin, runs=[sel.run.name],
                  protocols=[proto.name if proto else "unrecorded"],
                  date=releases.release_date(date), card_sha256=card_sha, changes=len(changes))
    new = releases.sealed(ledger, rel, changes)
    versions = (releases.configs_yaml(new), releases.changelog_markdown(new))
    return new, card.render(sel, stats, fp, template, versions=versions)


def _attribute(changes: list[Change], sel: Selection, decisions, relabels: dict) -> list[Change]:
    """Each change with what caused it: the review event (number, reason, reviewer) or the run."""
    verdicts = _current_verdicts(decisions)
    run = sel.run.name
    candidates = set(sel.run.candidates().column("id").to_pylist())
    out = []
    for c in changes:
        cause, reason, reviewer = f"mining run {run}", None, None
        event = None
        if c.kind == "removed":
            v = verdicts.get(c.id)
            if v is not None and v["verdict"] == "remove" and c.id in candidates:
                event = v
            elif c.id not in candidates:
                cause = f"not a candidate of mining run {run}"
            else:
                cause = f"not reviewed in mining run {run} (left out without --include-pending)"
        elif c.kind == "relabelled":
            event = relabels.get(c.id)
            if event is None:
                cause = f"the source table's label (mining run {run})"
        elif c.kind == "image replaced":
            cause = f"the source's image changed (mining run {run})"
        if event is not None:
            seq = event.get("seq")
            cause = f"review event #{seq}" if seq is not None else "review decision"
            reason, reviewer = event.get("reason"), event.get("reviewer")
        out.append(replace(c, cause=cause, reason=reason, reviewer=reviewer))
    return out


def _keep_versions(out: Path, tmp: Path, ledger: Ledger) -> None:
    """Hard-link every earlier version, and the latest one's files, under ``tmp/versions/``."""
    if ledger.latest is None:
        return
    dest = tmp / releases.VERSIONS_DIR
    if (out / releases.VERSIONS_DIR).is_dir():
        shutil.copytree(out / releases.VERSIONS_DIR, dest, copy_function=_link, symlinks=True)
    latest = dest / releases.tag(ledger.latest.version)
    latest.mkdir(parents=True)
    for name in _VERSION_ENTRIES:
        src = out / name
        if src.is_dir():
            shutil.copytree(src, latest / name, copy_function=_link, symlinks=True)
        elif src.is_file():
            _link(src, latest / name)


def _link(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:    # a file system without hard links: copy
        shutil.copy2(src, dst)
