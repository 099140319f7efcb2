"""`imhard build`, `imhard sources` and `imhard doctor`."""

from __future__ import annotations

import click

from .common import home_option, sha256_option_check, source_type
from .group import main


@main.command()
@click.option("--source", "name", required=True, type=source_type(),
              help="Source to build (see `imhard sources`); `_` and `-` are interchangeable.")
@click.option("--url", default=None, help="Download address replacing the default (a mirror).")
@click.option("--sha256", default=None, callback=sha256_option_check,
              help="Expected SHA-256 (64 hex digits) replacing the default.")
@click.option("--path", type=click.Path(exists=True), default=None,
              help="An archive or folder you already have (required for ImageNet).")
@click.option("--force", is_flag=True, help="Rebuild even when the table exists.")
@home_option
def build(name, url, sha256, path, force, home):
    """Download, verify and index a source into <home>/sources/NAME.parquet.

    Downloads resume when interrupted and are checked against the published checksum (or the
    one recorded by the first download). ImageNet has no public address: pass --path with
    ILSVRC2012_img_val.tar and its labels (ILSVRC2012_devkit_t12.tar.gz or
    LOC_val_solution.csv) beside it.

    \b
    Example:
      imhard build --source imagenet-a
      imhard build --source imagenet --path ~/data/ILSVRC2012_img_val.tar
      imhard build --source imagenet-r --url http://mirror.local/imagenet-r.tar --sha256 HEX
    """
    from ..sources import build as build_source

    res = build_source(name, home=home, url=url, sha256=sha256, path=path, force=force, progress=True)
    if res.skipped:
        click.echo(f"{res.name}: already built ({res.kept} rows) at {res.table}; "
                   "use --force to rebuild.")
        return
    click.echo(f"{res.name}: kept {res.kept}, rejected {res.rejected} → {res.table}")
    if res.rejected:
        click.echo(f"rejects: {res.rejects}")


@main.command("sources")
@home_option
def sources_cmd(home):
    """List every known source: licence, expected size, where it comes from, local status.

    \b
    Example:
      imhard sources
    """
    from ..sources import source_status

    for src, rows in source_status(home):
        status = f"built, {rows} rows" if rows is not None else "not built"
        where = src.default_url or "--path only (no public download)"
        click.echo(f"{src.name:<16} {src.label_space:<14} {status}")
        click.echo(f"    {src.description}")
        click.echo(f"    size:    {src.expected}")
        click.echo(f"    licence: {src.licence}")
        click.echo(f"    from:    {where}")


@main.command()
@home_option
def doctor(home):
    """Check this machine: torch/CUDA, free disk, built sources, cached model weights.

    \b
    Example:
      imhard doctor
    """
    from ..doctor import diagnose

    for line in diagnose(home).lines():
        click.echo(line)
