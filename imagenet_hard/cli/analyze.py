"""`imhard analyze`: the paper's zoom analyses of an exhaustive mining run (`imhard analyze RUN`,
the default, also `imhard analyze zoom RUN`), and the held-out check (`imhard analyze heldout`)."""

from __future__ import annotations

import click

from ..models.preprocess import PRECISIONS
from .common import device_option, home_option
from .group import ImHardGroup, main

DEFAULT_ANALYSIS = "zoom"


class DefaultCommandGroup(ImHardGroup):
    """A group whose first argument, when it names no subcommand, goes to :data:`DEFAULT_ANALYSIS`
    (so `imhard analyze RUN` keeps working beside `imhard analyze heldout`)."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_ANALYSIS, *args]
        return super().parse_args(ctx, args)

    def get_command(self, ctx, cmd_name):
        return self.commands.get(cmd_name) or self.commands.get(DEFAULT_ANALYSIS)


@main.group(cls=DefaultCommandGroup)
def analyze():
    """Analyse a mining run: its zoom statistics (the default) or a held-out check.

    `imhard analyze RUN` is `imhard analyze zoom RUN`; `imhard analyze heldout --run RUN`
    scores models that were not the run's judges on its candidates.

    \b
    Example:
      imhard analyze sample-full --out sample-analysis
    """


@analyze.command(DEFAULT_ANALYSIS)
@click.argument("run")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Folder for report.md, analysis.json and the PNG plots "
                   "(default <home>/analysis/RUN).")
@home_option
def zoom(run, out, home):
    """Analyse exhaustive mining run RUN as the paper does (sections 4.1–4.4).

    1-crop and maximum possible accuracy, the greedy minimum set cover and the accuracy of its
    first 1, 9 and 36 transforms, exclusive solves per zoom group, accuracy per anchor and per
    scale, all per origin; and what a crop order learned from the run saves early-exit mining.
    The run must be mined with --exhaustive.

    \b
    Example:
      imhard mine --source sample --judge efficientnet-lite0 --exhaustive --limit 3 --run sample-full
      imhard analyze sample-full --out sample-analysis
    """
    from ..analysis.report import analyze_run

    res = analyze_run(run, out=out, home=home)
    click.echo(res.summary())
    click.echo(f"read in {res.read_seconds:.2f} s, analysed in {res.seconds:.2f} s")
    click.echo(f"report: {res.report}\nnumbers: {res.json}\nplots: "
               + ", ".join(p.name for p in res.plots))


@analyze.command()
@click.option("--run", required=True, help="Mining run name (or folder).")
@click.option("--models", required=True, metavar="X,Y",
              help="Model specs that did not judge the run (see `imhard models`).")
@click.option("--precision", type=click.Choice(list(PRECISIONS)), default="fp32",
              show_default=True, help="Forward precision of the held-out models; the judge's "
              "own spec is allowed only at another precision than it judged at.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the random sample of non-candidates (and of --limit).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Score at most this many candidates (a seeded sample); default all.")
@click.option("--interval", type=click.Choice(["wilson", "exact"]), default="wilson",
              show_default=True, help="Interval of each accuracy: Wilson score or exact "
              "(Clopper-Pearson, scipy).")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95,
              show_default=True, help="Confidence level of the intervals.")
@device_option
@home_option
def heldout(run, models, precision, seed, limit, interval, confidence, device, home):
    """Score models that were not judges of mining run RUN on its candidates.

    Each model scores the run's candidates and a same-size seeded random sample of its
    non-candidates on the standard 1-crop (top-1 within each image's label space), with
    intervals: if the candidates are hard only for the judge, the gap closes. The report
    (heldout.md, heldout.json), a plot (heldout.png) and per-image predictions go in the run
    folder under heldout/; `imhard publish` puts the table on the card.

    \b
    Example:
      imhard analyze heldout --run sample-full --models efficientnet-lite0 --precision bf16
    """
    from ..analysis.heldout import (
        REPORT_MD,
        check_held_out,
        heldout_check,
        parse_models,
        report_dir,
    )
    from ..mining import open_run

    handle = open_run(run, home)
    check_held_out(parse_models(models), precision, handle.record)  # before torch loads
    report = heldout_check(handle, models, home=home, precision=precision, device=device,
                           seed=seed, method=interval, confidence=confidence, limit=limit,
                           progress=lambda line: click.echo(line, err=True))
    click.echo(report.summary())
    click.echo(f"report: {report_dir(handle) / REPORT_MD}")
