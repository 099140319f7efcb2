"""`imhard demo`: the whole pipeline on the offline sample source."""

from __future__ import annotations

import click

from .group import main


@main.command()
@click.option("--home", type=click.Path(file_okay=False), default=None,
              help="The demo's own home, emptied at each start (default "
                   "<cache>/imagenet-hard-demo); a non-empty folder that is not a demo home is "
                   "refused.")
@click.option("--full", is_flag=True, help="The long tour: all six of the paper's corruptions.")
def demo(home, full):
    """Run every stage on the nine offline sample photos (no network needed), in a home of its
    own, and say what to open next.

    \b
    Example:
      imhard demo --home /tmp/imhard-demo
    """
    from ..demo import run_demo

    run_demo(home, echo=click.echo, full=full)
