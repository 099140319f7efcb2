"""The input of every analysis: an exhaustive run's correctness masks as NumPy arrays.

:func:`load_run` is the one place that reads a mining run; everything else takes a
:class:`RunMasks` (or its boolean matrix), so the analyses are pure functions tests feed directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InvalidValueError
from ..zoom import N_TRANSFORMS


class NotExhaustiveError(InvalidValueError):
    """The run has no per-crop masks (it was mined with early exit)."""


def how_to_make_exhaustive(record: dict) -> str:
    """The one sentence telling how to mine an exhaustive run like ``record``'s."""
    sources = ",".join(record.get("sources") or ["SOURCE"])
    judge = record.get("judge") or "JUDGE"
    return (f"the analyses need every crop's verdict, and early exit stops at the first correct "
            f"one: mine the run again with `imhard mine --source {sources} --judge {judge} "
            f"--exhaustive`")


@dataclass(frozen=True)
class RunMasks:
    """Per-image verdicts of an exhaustive run.

    ``correct`` is (N, 324) bool in transform-index order (``9*s + 3*i + j``); ``one_crop`` the
    verdict on the standard 1-crop (resize 256, centre crop 224), or None when the run was mined
    before that column existed. ``origins`` is (N,) str. ``run``/``record`` name where they came
    from (empty for hand-made masks).
    """

    correct: np.ndarray
    origins: np.ndarray
    ids: tuple[str, ...] = ()
    one_crop: np.ndarray | None = None
    run: str = ""
    record: dict = field(default_factory=dict)

    def __post_init__(self):
        c = self.correct
        if c.dtype != bool or c.ndim != 2 or c.shape[1] != N_TRANSFORMS:
            raise InvalidValueError(f"masks must be a bool (N, {N_TRANSFORMS}) array, got "
                                    f"{c.dtype} {c.shape}")
        if len(self.origins) != len(c):
            raise InvalidValueError(f"{len(self.origins)} origins for {len(c)} masks")
        if self.one_crop is not None and self.one_crop.shape != (len(c),):
            raise InvalidValueError(f"one_crop has shape {self.one_crop.shape}, expected "
                                    f"({len(c)},)")

    def __len__(self) -> int:
        return len(self.correct)

    def select(self, keep: np.ndarray) -> RunMasks:
        """The images where ``keep`` (bool (N,) or integer positions) holds."""
        return RunMasks(self.correct[keep], self.origins[keep],
                        tuple(np.asarray(self.ids, dtype=object)[keep]) if self.ids else (),
                        None if self.one_crop is None else self.one_crop[keep],
                        self.run, self.record)

    def ids_sha256(self) -> str:
        """SHA-256 of the ids, one per line in id order (what ``run.json`` pins as ``ids_sha256``)."""
        h = hashlib.sha256()
        for rid in sorted(self.ids):
            h.update(rid.encode("utf-8") + b"\n")
        return h.hexdigest()


def masks_from_table(table: pa.Table, run: str = "", record: dict | None = None) -> RunMasks:
    """:class:`RunMasks` from a results table (``mining.SHARD_SCHEMA`` columns)."""
    record = record or {}
    mask = table.column("mask")
    if mask.null_count:
        where = f"run {run!r}" if run else "the results"
        raise NotExhaustiveError(f"{where} has no per-crop masks for {mask.null_count} of "
                                 f"{table.num_rows} images; {how_to_make_exhaustive(record)}")
    flat = pc.list_flatten(mask).to_numpy(zero_copy_only=False)
    if flat.size != table.num_rows * N_TRANSFORMS:
        raise InvalidValueError(f"masks must hold {N_TRANSFORMS} verdicts each; {run or 'the table'}"
                                f" holds {flat.size} for {table.num_rows} images")
    one_crop = None
    if "one_crop_correct" in table.column_names:
        col = table.column("one_crop_correct")
        if col.null_count == 0:
            one_crop = col.to_numpy(zero_copy_only=False).astype(bool)
    origins = np.asarray(table.column("origin").to_pylist(), dtype=object)
    return RunMasks(flat.astype(bool).reshape(table.num_rows, N_TRANSFORMS), origins,
                    tuple(table.column("id").to_pylist()), one_crop, run, record)


def load_run(run, home=None) -> RunMasks:
    """Read mining run ``run`` (a name, a run folder or a ``MiningRun``) of data home ``home``;
    raise :class:`NotExhaustiveError` with the command that makes an exhaustive one when it was
    mined with early exit."""
    from ..mining import open_run

    handle = open_run(run, home)
    record = handle.record.to_json()
    if not handle.record.exhaustive:
        raise NotExhaustiveError(f"run {handle.name!r} was mined with early exit; "
                                 f"{how_to_make_exhaustive(record)}")
    return masks_from_table(handle.results(), handle.name, record)
