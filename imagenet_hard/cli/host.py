"""`imhard submit` and `imhard host run | status | compare`: thin commands over
:mod:`imagenet_hard.host`."""

from __future__ import annotations

import click

from .bench import bench
from .common import RegistryName, device_option, home_option
from .group import main
from .score import SUITE_ALL, MemorySize, _suite_names, _tta_modes

board_option = click.option(
    "--board", required=True, metavar="FOLDER|OWNER/NAME",
    help="The board: a folder (made when missing), or a Hub dataset repo holding its queue.")


def _options(device, batch_size, timeout, load_timeout, memory_limit, sandbox_tool, quiet):
    from ..score import RunOptions

    return RunOptions(device=device, batch_size=batch_size, timeout=timeout,
                      load_timeout=load_timeout, no_network=True, memory_limit=memory_limit,
                      sandbox=sandbox_tool, progress=False,
                      on_output=None if quiet else (lambda line: click.echo(f"  | {line}",
                                                                            err=True)))


def _sandbox_options(f):
    """How the worker runs strangers' files: always in a sandbox, never with the network."""
    opts = [
        device_option,
        click.option("--batch-size", default=None, type=click.IntRange(1),
                     help="Images per batch (default: 256 on CUDA, 32 on the CPU)."),
        click.option("--timeout", default=600.0, show_default=True,
                     type=click.FloatRange(min=0.1),
                     help="Seconds one batch may take before the submission is killed."),
        click.option("--load-timeout", default=600.0, show_default=True,
                     type=click.FloatRange(min=0.1), help="Seconds import + load may take."),
        click.option("--memory-limit", default="default", type=MemorySize(), metavar="SIZE",
                     help="Data memory a submission may use, e.g. 8G (default: 3/4 of the RAM)."),
        click.option("--sandbox", "sandbox_tool", default="auto", show_default=True,
                     type=click.Choice(["auto", "bwrap", "unshare"]),
                     help="What confines submissions (never 'none' for strangers' files)."),
        click.option("--quiet", "-q", is_flag=True, help="Hide the submissions' own output."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@main.command()
@click.argument("submission", type=click.Path(dir_okay=False))
@board_option
@click.option("--suite", is_flag=False, flag_value=SUITE_ALL, default=None, metavar="[SETS]",
              help="Ask for a suite: alone, every set the board's worker has built; or "
                   "comma-separated set names. Put it after the file.")
@click.option("--tta", default=None, type=RegistryName("TTA mode", _tta_modes), metavar="MODE",
              help="Ask for a test-time augmentation mode (zoom-in-mean, 10-crop, …).")
@click.option("--submitter", default=None, metavar="NAME",
              help="Who submits (default: your user name); the board limits requests per name.")
@click.option("--no-check", is_flag=True, help="File without the local check (it runs the "
              "file in the sandbox on two generated images, as `imhard score` would).")
@device_option
def submit(submission, board, suite, tta, submitter, no_check, device):
    """Check a submission file here, then file a request to score it on a board.

    The check runs the file as `imhard score` does (sandbox, no network, one batch of two
    generated images). A request for the same file, dataset, protocol and mode is answered with
    the existing one. Prints the request id and how to follow it.

    \b
    Example:
      imhard submit my_model.py --board /tmp/board
    """
    from ..host.submit import submit as run_submit
    from ..score import RunOptions

    sets = _suite_names(suite) if suite is not None else None
    if suite is not None and sets is None:
        sets = [SUITE_ALL]
    opts = RunOptions(device=device, no_network=True, on_output=lambda line: click.echo(
        f"  | {line}", err=True))
    done = run_submit(submission, board, sets=sets, tta=tta, submitter=submitter, options=opts,
                      check=not no_check)
    click.echo(done.summary())


@main.group()
def host():
    """Host a board: the worker that scores queued submissions, and the queue's state.

    \b
    Example:
      imhard host status --board /tmp/board
    """


@host.command("run")
@board_option
@click.option("--once", is_flag=True, help="Stop when no request is pending.")
@click.option("--poll", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between looks at an empty queue.")
@click.option("--dataset", default=None, metavar="DIR_OR_HUB_ID",
              help="What requests are scored on (default <home>/dist/imagenet-hard).")
@click.option("--dir", "board_dir", default=None, type=click.Path(file_okay=False),
              help="Where a Hub board is built before upload (default "
                   "<home>/host/boards/OWNER__NAME); a folder board is built in place.")
@_sandbox_options
@home_option
def run_cmd(board, once, poll, dataset, board_dir, home, **run):
    """Score the board's pending requests, oldest first, and rebuild the board after each.

    Each request is claimed with a lease, scored in the sandbox without network (weights from
    the caches only), checked, added to the board and marked FINISHED, or FAILED with a
    one-line reason. A request whose worker died goes back to pending when its lease runs out,
    and the next worker resumes from the batch cache. A Hub board's token (HF_TOKEN) is taken
    out of the environment at start and never reaches a submission.

    \b
    Example:
      imhard host run --board /tmp/board --once
    """
    from ..host import host_run
    from ..host.worker import take_token

    token = take_token()
    done = host_run(board, dataset=dataset, home=home, options=_options(**run), once=once,
                    poll=poll, board_dir=board_dir, token=token,
                    log=lambda line: click.echo(line))
    click.echo(f"requests handled: {len(done.turns)}; board: {done.board_dir / 'index.html'}")


@host.command("status")
@board_option
def status_cmd(board):
    """Print the board's queue: each request, its status, and its result or reason.

    \b
    Example:
      imhard host status --board /tmp/board
    """
    from ..host import open_queue, status_table

    click.echo(status_table(open_queue(board)))


@host.command("compare")
@board_option
@click.argument("first")
@click.argument("second")
def compare_cmd(board, first, second):
    """Compare two verified entries of a folder board image by image (McNemar's exact test) and
    write the comparison page; entries are named by their result file's stem.

    \b
    Example:
      imhard host compare --board /tmp/board ENTRY_A ENTRY_B
    """
    from pathlib import Path

    from ..host.pages import compare_entries

    dest, p = compare_entries(Path(board), first, second)
    verdict = "significant" if p.significant else "not significant"
    click.echo(f"{first} gets {p.a_only} images {second} misses, {second} gets {p.b_only} "
               f"{first} misses, of {p.n}: {verdict} (p = {p.p_value:.4g})\npage: {dest}")


@bench.command("host")
@click.option("--images", default=64, show_default=True, type=click.IntRange(1),
              help="Generated images the request is scored on.")
@click.option("--entries", default=1000, show_default=True, type=click.IntRange(2),
              help="Generated verified entries on the board whose rebuild is timed.")
@click.option("--rows", default=10_980, show_default=True, type=click.IntRange(2),
              help="Images per generated entry (the release has 10,980).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
@device_option
def bench_host_cmd(images, entries, rows, batch_size, device):
    """Queue overhead: one request through submit, claim, score, add, rebuild and finish on a
    folder board against scoring it alone (EfficientNet-Lite0, sandboxed), its share of a
    10,980-image scoring projected (target < 5%); and the board rebuild with ENTRIES generated
    verified entries (target < 10 s).

    \b
    Example:
      imhard bench host --images 8 --entries 10 --rows 200
    """
    from ..bench import format_report
    from ..bench.host import bench_host

    click.echo(format_report(bench_host(images=images, entries=entries, rows=rows,
                                        batch_size=batch_size, device=device,
                                        echo=lambda m: click.echo(m, err=True))))
