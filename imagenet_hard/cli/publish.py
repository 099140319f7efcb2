"""`imhard publish`: write the dataset folder, check it, push it to the Hugging Face Hub."""

from __future__ import annotations

import click

from ..errors import ImHardError
from .common import home_option
from .group import main

MAX_LISTED_PROBLEMS = 50


def _size(ctx, param, value):
    from ..publish import parse_shard_size

    try:
        return parse_shard_size(value)
    except ImHardError as exc:
        raise click.BadParameter(str(exc)) from None


def _decisions(home, include_pending: bool):
    """The review's current verdicts; the review stage owns the database."""
    try:
        from ..review import current_decisions
    except ImportError:
        if include_pending:
            click.echo("warning: no review stage installed; publishing every candidate", err=True)
            return None
        raise ImHardError("the review stage (imagenet_hard.review) is not available, so no "
                          "candidate is marked keep; pass --include-pending to publish them all") from None
    return current_decisions(home)


def _run_check(folder) -> None:
    from ..publish import check

    report = check(folder)
    if report.ok:
        origins = ", ".join(f"{o} {n}" for o, n in report.by_origin.items())
        click.echo(f"{report.folder}: OK — {report.rows} rows ({origins}); "
                   f"fingerprint {report.fingerprint}")
        return
    click.echo(f"{report.folder}: {len(report.problems)} problem(s):", err=True)
    for p in report.problems[:MAX_LISTED_PROBLEMS]:
        click.echo(f"  - {p}", err=True)
    if len(report.problems) > MAX_LISTED_PROBLEMS:
        click.echo(f"  … and {len(report.problems) - MAX_LISTED_PROBLEMS} more", err=True)
    raise click.exceptions.Exit(1)


def _run_publish(run, out, include_pending, max_shard_size, home):
    from ..publish import publish as publish_run

    res = publish_run(run, _decisions(home, include_pending), out, include_pending=include_pending,
                      max_shard_size=max_shard_size, home=home)
    sel = res.selection
    origins = ", ".join(f"{o} {n}" for o, n in res.by_origin.items())
    click.echo(f"published {res.rows} images ({origins}) in {len(res.shards)} shard(s) → {res.out}")
    click.echo(f"review: {sel.kept} kept, {sel.removed} removed, {sel.pending} not reviewed "
               f"({'included' if include_pending else 'left out; --include-pending adds them'})")
    click.echo(f"fingerprint: {res.fingerprint}")
    click.echo(f'load it: datasets.load_dataset("{res.out}", split="validation")')
    return res.out


@main.command()
@click.option("--run", "run", metavar="RUN", help="Mining run: a name under <home>/mining or a folder.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default <home>/dist/imagenet-hard); replaced as a whole.")
@click.option("--include-pending", is_flag=True,
              help="Also publish candidates nobody has reviewed yet (default: only those kept).")
@click.option("--max-shard-size", default="500MB", show_default=True, callback=_size,
              help="Largest parquet shard, e.g. 500MB (MB, GB: 10^6, 10^9 bytes) or 256MiB (M, "
                   "MiB: 2^20).")
@click.option("--check", "check_dir", type=click.Path(file_okay=False), default=None,
              help="Verify a published folder (schema, counts, labels, images, fingerprint) and stop.")
@click.option("--push", "repo_id", metavar="OWNER/NAME", default=None,
              help="Upload the folder (--out, or the one just published) to this Hub dataset repo.")
@click.option("--private", is_flag=True, help="Create the Hub repo as private (new repos only).")
@click.option("--revision", metavar="BRANCH", default=None,
              help="Push to this branch (created if missing) instead of main.")
@home_option
def publish(run, out, include_pending, max_shard_size, check_dir, repo_id, private, revision, home):
    """Publish a reviewed mining run as parquet shards + dataset card, check it, push it.

    The published rows are the run's candidates whose current review verdict is `keep`;
    `remove` always drops a row; unreviewed ones only come with --include-pending.

    \b
    Example:
      imhard publish --run efficientnet-lite0__sample --include-pending
      imhard publish --check ~/.cache/imagenet-hard/dist/imagenet-hard
      imhard publish --run clip-all --push me/imagenet-hard --private
    """
    if check_dir:
        if run or repo_id:
            raise click.UsageError("--check verifies a folder on its own; drop --run/--push")
        _run_check(check_dir)
        return
    if not run and not repo_id:
        raise click.UsageError("give --run RUN to publish, --push OWNER/NAME to upload, or --check DIR")
    if run:
        out = _run_publish(run, out, include_pending, max_shard_size, home)
    if repo_id:
        from ..publish import default_out, push

        url = push(out or default_out(home), repo_id, private=private, revision=revision)
        click.echo(f"pushed to {url}")
