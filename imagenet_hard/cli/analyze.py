"""`imhard analyze`: the paper's zoom analyses of an exhaustive mining run, with plots."""

from __future__ import annotations

import click

from .common import home_option
from .group import main


@main.command()
@click.argument("run")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Folder for report.md, analysis.json and the PNG plots "
                   "(default <home>/analysis/RUN).")
@home_option
def analyze(run, out, home):
    """Analyse exhaustive mining run RUN as the paper does (sections 4.1–4.4).

    1-crop and maximum possible accuracy, the greedy minimum set cover and the accuracy of its
    first 1, 9 and 36 transforms, exclusive solves per zoom group, accuracy per anchor and per
    scale, all per origin; and what a crop order learned from the run saves early-exit mining.
    The run must be mined with --exhaustive.

    \b
    Example:
      imhard mine --source sample --judge efficientnet-lite0 --exhaustive --run sample-full
      imhard analyze sample-full --out sample-analysis
    """
    from ..analysis.report import analyze_run

    res = analyze_run(run, out=out, home=home)
    click.echo(res.summary())
    click.echo(f"read in {res.read_seconds:.2f} s, analysed in {res.seconds:.2f} s")
    click.echo(f"report: {res.report}\nnumbers: {res.json}\nplots: "
               + ", ".join(p.name for p in res.plots))
