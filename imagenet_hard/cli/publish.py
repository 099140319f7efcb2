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
    """The review's current verdicts and relabels; the review stage owns the database."""
    try:
        from ..review import current_decisions, current_relabels
    except ImportError:
        if include_pending:
            click.echo("warning: no review stage installed; publishing every candidate", err=True)
            return None, {}
        raise ImHardError("the review stage (imagenet_hard.review) is not available, so no "
                          "candidate is marked keep; pass --include-pending to publish them all") from None
    return current_decisions(home, with_seq=True), current_relabels(home)


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


def _run_publish(run, out, include_pending, max_shard_size, home, version):
    from ..publish import publish as publish_run
    from ..publish.releases import counts_text

    decisions, relabels = _decisions(home, include_pending)
    res = publish_run(run, decisions, out, include_pending=include_pending,
                      max_shard_size=max_shard_size, home=home, version=version, relabels=relabels)
    if res.unchanged:
        click.echo(f"version {res.version} is already published with this content in {res.out}; "
                   "nothing written")
        return res.out
    sel = res.selection
    origins = ", ".join(f"{o} {n}" for o, n in res.by_origin.items())
    click.echo(f"published {res.rows} images ({origins}) in {len(res.shards)} shard(s) → {res.out}")
    click.echo(f"review: {sel.kept} kept, {sel.removed} removed, {sel.pending} not reviewed "
               f"({'included' if include_pending else 'left out; --include-pending adds them'})")
    click.echo(f"fingerprint: {res.fingerprint}")
    if res.version:
        click.echo(f"version {res.version}: {counts_text(res.changes)} (changes.parquet)")
        click.echo(f'load it: datasets.load_dataset("{res.out}", "v{res.version}", '
                   'split="validation")')
    else:
        click.echo(f'load it: datasets.load_dataset("{res.out}", split="validation")')
    return res.out


@main.command()
@click.option("--run", "run", metavar="RUN", help="Mining run: a name under <home>/mining or a folder.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default <home>/dist/imagenet-hard); replaced as a whole.")
@click.option("--version", "version", metavar="X.Y.Z", default=None,
              help="Publish as this version: major when rows are removed or relabelled, minor "
                   "when only added, patch when only the card changes (docs/publish.md).")
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
def publish(run, out, version, include_pending, max_shard_size, check_dir, repo_id, private,
            revision, home):
    """Publish a reviewed mining run as parquet shards + dataset card, check it, push it.

    The published rows are the run's candidates whose current review verdict is `keep`;
    `remove` always drops a row; unreviewed ones only come with --include-pending.

    \b
    Example:
      imhard publish --run efficientnet-lite0__sample --include-pending
      imhard publish --run efficientnet-lite0__sample --include-pending --version 1.0.0
      imhard publish --check ~/.cache/imagenet-hard/dist/imagenet-hard
      imhard publish --run clip-all --push me/imagenet-hard --private
    """
    if check_dir:
        if run or repo_id:
            raise click.UsageError("--check verifies a folder on its own; drop --run/--push")
        _run_check(check_dir)
        return
    if version and not run:
        raise click.UsageError("--version names what --run publishes; give --run RUN too")
    if version:
        from ..publish.releases import version_text

        try:
            version = version_text(version)
        except ImHardError as exc:
            raise click.BadParameter(str(exc), param_hint="--version") from None
    if not run and not repo_id:
        raise click.UsageError("give --run RUN to publish, --push OWNER/NAME to upload, or --check DIR")
    if run:
        out = _run_publish(run, out, include_pending, max_shard_size, home, version)
    if repo_id:
        from ..publish import default_out, push

        url = push(out or default_out(home), repo_id, private=private, revision=revision)
        click.echo(f"pushed to {url}")


@main.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--dataset", type=click.Path(file_okay=False), default=None,
              help="The versioned folder A and B name versions of (default <home>/dist/imagenet-hard).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: both sides, counts, changes.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="List at most this many changed rows (0: all); the counts are always whole.")
@home_option
def diff(a, b, dataset, as_json, limit, home):
    """What changed from A to B: counts per kind and origin, then the rows and reasons.

    A and B are each a version (1.0.0) of --dataset, a published folder (also one published
    before versions existed: rows are matched by id, or by image hash), or a Hub revision
    OWNER/NAME@v1.0.0. Relabelled rows show their old → new labels in words.

    \b
    Example:
      imhard diff 1.0.0 ~/.cache/imagenet-hard/dist/imagenet-hard --limit 5
    """
    import json

    from ..publish.diff import diff as diff_releases
    from ..publish.diff import diff_json, format_diff

    res = diff_releases(a, b, dataset=dataset, home=home)
    if as_json:
        click.echo(json.dumps(diff_json(res, limit), indent=2, ensure_ascii=False))
    else:
        click.echo(format_diff(res, limit))
