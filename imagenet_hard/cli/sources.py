"""`imhard build`, `imhard sources` and `imhard doctor`."""

from __future__ import annotations

import click

from .. import sources as lib
from . import main
from .common import home_option, source_type


@main.command()
@click.option("--source", "name", required=True, type=source_type(),
              help="Source to build (see `imhard sources`); `_` and `-` are interchangeable.")
@click.option("--url", default=None, help="Download address replacing the default (a mirror).")
@click.option("--sha256", default=None, help="Expected SHA-256 replacing the default.")
@click.option("--path", type=click.Path(exists=True), default=None,
              help="An archive or folder you already have (required for ImageNet).")
@click.option("--force", is_flag=True, help="Rebuild even when the table exists.")
@home_option
def build(name, url, sha256, path, force, home):
    """Download, verify and index a source into <home>/sources/NAME.parquet.

    \b
    Example:
      imhard build --source imagenet-a
      imhard build --source imagenet --path ~/data/ILSVRC2012_img_val.tar
    """
    res = lib.build(name, home=home, url=url, sha256=sha256, path=path, force=force, progress=True)
    if res.skipped:
        click.echo(f"{res.name}: already built ({res.kept} rows) at {res.table}; "
                   "use --force to rebuild.")
        return
    click.echo(f"{res.name}: kept {res.kept}, rejected {res.rejected} → {res.table}")
    if res.rejected:
        click.echo(f"rejects: {res.rejects}")
