"""The offline end-to-end demo: every stage of the pipeline on the ``sample`` source.

It is what ``make demo`` runs: build → mine → review → publish → score → leaderboard, each step
through the same library functions the CLI uses, printing what a user would see.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow.parquet as pq

from . import home as homes
from .sources import build


def _print_table(path, echo: Callable[[str], None]) -> None:
    table = pq.read_table(path, columns=["id", "label", "english_label", "width", "height"])
    echo(f"{'id':<40} {'label':<12} {'english_label':<32} size")
    for row in table.to_pylist():
        names = ", ".join(row["english_label"])
        echo(f"{row['id']:<40} {str(row['label']):<12} {names[:32]:<32} "
             f"{row['width']}x{row['height']}")


def step_build(home, echo) -> None:
    echo("== 1. build: the offline sample source ==")
    res = build("sample", home=home)
    echo(f"sample: {res.kept} images, {res.rejected} rejected → {res.table}"
         + (" (already built)" if res.skipped else ""))
    _print_table(res.table, echo)


STEPS = [step_build]


def run_demo(home=None, echo: Callable[[str], None] = print) -> None:
    home = homes.data_home(home)
    echo(f"data home: {home}")
    for step in STEPS:
        step(home, echo)
        echo("")
