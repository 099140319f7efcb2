"""`imhard bench …`: time the reference procedure against ours, in one process, and print the ratio."""

from __future__ import annotations

import click

from . import main


@main.group()
def bench():
    """Benchmarks that time a reference procedure and ours on the same data and print the ratio.

    \b
    Example:
      imhard bench zoom --images 4
    """
