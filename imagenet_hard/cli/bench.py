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


@bench.command("score")
@click.option("--images", default=128, show_default=True, help="Images in the generated dataset.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--workers", default=None, type=int, help="DataLoader workers (default: as `score`).")
@click.option("--device", default=None, metavar="cpu|cuda[:N]", help="Torch device.")
def bench_score(images, batch_size, workers, device):
    """Harness overhead: `imhard score` (model/transform form) against a bare DataLoader loop.

    Both time EfficientNet-Lite0 over the same generated dataset; prints both images/s and the
    ratio (target ≥ 0.90).

    \b
    Example:
      imhard bench score --images 128 --batch-size 32
    """
    from ..score.bench import bench_score as run

    report = run(images=images, batch_size=batch_size, workers=workers, device=device,
                 echo=click.echo)
    click.echo(report.summary())
