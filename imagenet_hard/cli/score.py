"""`imhard score` and `imhard verify`: thin commands over :mod:`imagenet_hard.score`."""

from __future__ import annotations

import click

from .common import RegistryName, device_option, home_option
from .group import main


class MemorySize(click.ParamType):
    """``--memory-limit``: 8G, 512M, 1.5GiB or none (:mod:`imagenet_hard.sizes`); ``default``: 3/4
    of the RAM."""

    name = "size"

    def convert(self, value, param, ctx):
        from ..errors import InvalidValueError
        from ..sandbox import default_memory_limit, parse_memory_limit

        if value == "default":
            return default_memory_limit()
        try:
            return parse_memory_limit(value)
        except InvalidValueError as exc:
            self.fail(str(exc), param, ctx)


def _tta_modes():
    from ..score.tta import TTA_MODES

    return TTA_MODES


def _tta_mode(name, tta_from, home):
    """The --tta mode, restricted to the cover of run ``tta_from`` when given."""
    if not name:
        return None
    from ..score.tta import get_mode, restrict

    mode = get_mode(name)
    if tta_from:
        from ..analysis import cover_of_run

        mode = restrict(mode, *cover_of_run(tta_from, home))
    return mode


def _run_options(f):
    """Options shared by score and verify: how the child process runs."""
    opts = [
        device_option,
        click.option("--batch-size", default=None, type=click.IntRange(1),
                     help="Images per predict call / DataLoader batch (default: 256 on CUDA, 32 "
                          "on the CPU)."),
        click.option("--workers", default=None, type=click.IntRange(0),
                     help="DataLoader workers for the model/transform form (default: CPUs-1, at "
                          "most 16 on CUDA and 4 on the CPU)."),
        click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(min=0.1),
                     help="Seconds one batch may take before the submission is killed."),
        click.option("--load-timeout", default=1800.0, show_default=True,
                     type=click.FloatRange(min=0.1),
                     help="Seconds import + load may take (weights downloads included)."),
        click.option("--no-network", is_flag=True,
                     help="Run the submission in a fresh network namespace (Linux unshare)."),
        click.option("--sandbox", "sandbox_tool", default="auto", show_default=True,
                     type=click.Choice(["auto", "bwrap", "unshare", "none"]),
                     help="What confines the submission: bubblewrap, else unshare (auto). "
                          "'none' runs it unconfined: unsafe for files you did not write."),
        click.option("--memory-limit", default="default", type=MemorySize(), metavar="SIZE",
                     help="Data memory the submission may use, e.g. 8G (G, GiB: 2^30 bytes; GB: "
                          "10^9), or none (default: 3/4 of the RAM)."),
        click.option("--quiet", "-q", is_flag=True, help="Hide the submission's own output."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _options(progress, quiet, memory_limit, sandbox_tool, **kw):
    from ..score import RunOptions

    return RunOptions(**kw, progress=progress, memory_limit=memory_limit, sandbox=sandbox_tool,
                      on_output=None if quiet else (lambda line: click.echo(f"  | {line}", err=True)))


def _suite_names(value: str | None) -> list[str] | None:
    """``--suite`` alone (or ``--suite all``) → every set (None); ``--suite a,b`` → those."""
    if value is None or value.strip().lower() == SUITE_ALL:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("give set names separated by commas, e.g. imagenet-a,objectnet",
                                 param_hint="--suite")
    return names


SUITE_ALL = "all"


@main.command()
@click.argument("submission", type=click.Path(dir_okay=False))
@click.option("--dataset", default=None, metavar="DIR_OR_HUB_ID",
              help="Folder or Hub repo with the taesiri/imagenet-hard schema "
                   "(default <home>/dist/imagenet-hard).")
@click.option("--split", default="validation", show_default=True)
@click.option("--suite", is_flag=False, flag_value=SUITE_ALL, default=None, metavar="[SETS]",
              help="Score on a suite, each set with its own protocol: alone, every built source "
                   "plus the published ImageNet-Hard; or comma-separated set names "
                   "(imagenet, imagenet-real, imagenet-a, objectnet, imagenet-c, "
                   "imagenet-c/fog, imagenet-hard …). Put it after the file.")
@click.option("--baseline", default=None, type=click.Path(dir_okay=False),
              help="With --suite: AlexNet's suite result on the same ImageNet-C tables, for mCE.")
@click.option("--limit", default=None, type=click.IntRange(1),
              help="Score only the first N rows (of each set, with --suite).")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Result JSON (default <home>/scores/<submission>.json, or .suite.json); "
                   "predictions beside it.")
@click.option("--tta", default=None, type=RegistryName("TTA mode", _tta_modes), metavar="MODE",
              help="Test-time augmentation (model + transform form): zoom-in-mean, zoom-in-max, "
                   "zoom-out-mean, zoom-224-mean, 5-crop, 10-crop, … (mean or max of the crops' "
                   "softmax; --batch-size then counts crops). With --suite: every set, each "
                   "under its own protocol.")
@click.option("--tta-from", default=None, metavar="RUN",
              help="With a zoom --tta: only the transforms of exhaustive run RUN's greedy cover "
                   "(the paper used the cover of the classifier's IN+ReaL run for every set).")
@_run_options
@home_option
def score(submission, dataset, split, suite, baseline, limit, out, tta, tta_from, home, **run):
    """Score a submission file (load(device)→predict, or model + transform) on ImageNet-Hard,
    or with --suite on every built source, each with its published protocol.

    The submission runs in a sandbox (bubblewrap, else unshare): it sees no other process, no
    tokens and no home folder, writes only to a scratch /tmp, and dies with all it started;
    finished batches are kept, so rerunning after a crash or timeout resumes.

    \b
    Example:
      imhard score leaderboard/submissions/efficientnet_lite0.py --limit 500
      imhard score my_model.py --dataset taesiri/imagenet-hard --device cuda --no-network
      imhard score my_model.py --memory-limit 16G
      imhard score my_model.py --suite
      imhard score my_model.py --suite imagenet-a,imagenet-r,objectnet
      imhard score leaderboard/submissions/resnet50.py --tta zoom-in-max --batch-size 128
      imhard score my_model.py --suite --tta zoom-in-mean --tta-from sample-full
    """
    if baseline and suite is None:
        raise click.BadParameter("--baseline only applies with --suite", param_hint="--baseline")
    if tta_from and not tta:
        raise click.UsageError("--tta-from restricts a zoom --tta mode; pass --tta too")
    mode = _tta_mode(tta, tta_from, home)
    if suite is not None:
        return _score_suite(submission, _suite_names(suite), dataset, split, limit, out, home,
                            baseline, mode, run)
    from ..score import score as run_score

    opts = _options(progress=True, **run)
    run = run_score(submission, dataset=dataset, split=split, limit=limit, out=out, home=home,
                    options=opts, tta=mode)
    if run.resumed_rows:
        click.echo(f"resumed: {run.resumed_rows} rows came from an earlier, interrupted run")
    click.echo(run.result.summary())
    click.echo(f"result: {run.path}\npredictions: {run.predictions}")


def _score_suite(submission, names, dataset, split, limit, out, home, baseline, tta, run) -> None:
    from ..score.ranks import score_suite

    done = score_suite(submission, sets=names, dataset=dataset, split=split, limit=limit, out=out,
                       home=home, options=_options(progress=True, **run), baseline=baseline,
                       tta=tta)
    if done is None:  # a torchrun rank other than 0: rank 0 writes and prints the result
        return
    if done.predicted < done.scored:
        click.echo(f"resumed: {done.scored - done.predicted} of {done.scored} rows came from "
                   "earlier runs")
    click.echo(done.result.summary())
    click.echo(f"result: {done.path} (predictions beside it, one file per set)")


@main.command()
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("--sample", default=200, show_default=True, type=click.IntRange(1),
              help="Rows to re-run (of each set, for a suite result), drawn at random (seeded).")
@click.option("--seed", default=0, show_default=True, help="Seed of the row sample.")
@click.option("--submission", default=None, type=click.Path(dir_okay=False),
              help="The submission file, when not at the path the result records.")
@click.option("--dataset", default=None, metavar="DIR_OR_HUB_ID",
              help="The dataset, when not where the result records.")
@click.option("--baseline", default=None, type=click.Path(dir_okay=False),
              help="Suite results: the AlexNet suite result, to re-check the mCE.")
@_run_options
@home_option
def verify(result, sample, seed, submission, dataset, baseline, home, **run):
    """Re-run a result's submission on a random subset and check its predictions and numbers.

    Passes when the re-run top-1 agrees on ≥ 99% of the sampled rows, the top-5 sets on ≥ 95%,
    the top-1 probability is within 0.02 on ≥ 95%, and the result's metrics follow from its
    predictions and the dataset's labels. A result scored with --tta is re-run with the mode it
    records. A suite result is checked set by set (each set's table must be built here with the
    same fingerprint), and its ImageNet-C aggregates are recomputed.

    \b
    Example:
      imhard verify ~/.cache/imagenet-hard/scores/efficientnet_lite0.json --sample 100
      imhard verify ~/.cache/imagenet-hard/scores/my_model.suite.json --sample 20
    """
    from ..errors import ImHardError
    from ..score.suite import is_suite

    opts = _options(progress=True, **run)
    if is_suite(result):
        from ..score.suite import verify_suite

        report = verify_suite(result, sample=sample, seed=seed, submission=submission,
                              dataset=dataset, home=home, options=opts, baseline=baseline)
    else:
        from ..score import verify as run_verify

        report = run_verify(result, sample=sample, seed=seed, submission=submission,
                            dataset=dataset, home=home, options=opts)
    click.echo(report.summary())
    if not report.passed:
        raise ImHardError(f"{result} did not verify")


@main.command("fetch-weights")
@click.argument("submission", type=click.Path(exists=True, dir_okay=False))
def fetch_weights(submission):
    """Fetch a submission's weights into the caches the scoring sandbox reads: it imports and
    loads the file unconfined (no sandbox), with the network and your environment, tokens
    included, so only for files you trust.

    `imhard score` never downloads: the sandbox shows $TORCH_HOME/hub/checkpoints and the
    Hugging Face hub cache's models--* read-only. Run this once before scoring a file that
    downloads its weights on first load (torchvision, timm, open_clip, the Hub): it imports the
    file, calls load("cpu") (the predict form), and lists what the caches gained.

    \b
    Example:
      imhard fetch-weights my_model.py
    """
    from ..score.fetch import fetch_weights as run_fetch

    report = run_fetch(submission, on_output=lambda line: click.echo(f"  | {line}", err=True))
    click.echo(report.summary())
