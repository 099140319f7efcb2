"""`imhard models`: model families and judges, how their specs read, where each came from."""

from __future__ import annotations

import click

from .group import main


@main.command("models")
@click.argument("family", required=False)
@click.argument("pattern", required=False, default="*")
def models_cmd(family, pattern):
    """List model families (usable with --judge and create_model) and plugin judges; with
    FAMILY, list the names that family offers (matching PATTERN; imports its library).

    \b
    Example:
      imhard models
      imhard models timm 'resnet5*'
    """
    from .. import models as lib
    from ..judges import DEFAULT_JUDGE, JUDGES

    if family:
        for name in lib.list_models(family, pattern):
            click.echo(name)
        return
    for name, fam, origin in lib.describe_families(pattern):
        mark = "  (default judge)" if name == DEFAULT_JUDGE else ""
        click.echo(f"{fam.syntax:<44} {origin}{mark}")
        click.echo(f"    {fam.summary}")
    for name in JUDGES.names(pattern):
        click.echo(f"{name:<44} {JUDGES.origin(name)} (judge)")
