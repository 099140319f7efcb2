"""`imhard demo`: the whole pipeline on the offline sample source."""

from __future__ import annotations

import click

from .common import home_option
from .group import main


@main.command()
@home_option
def demo(home):
    """Run every stage on the nine offline sample photos (no network needed).

    \b
    Example:
      imhard demo --home /tmp/imhard-demo
    """
    from ..demo import run_demo

    run_demo(home, echo=click.echo)
