"""`imhard leaderboard build | add | push`: thin commands over :mod:`imagenet_hard.leaderboard`."""

from __future__ import annotations

import click

from .common import home_option
from .group import main

board_dir_option = click.option(
    "--dir", "board_dir", default="leaderboard", show_default=True,
    type=click.Path(file_okay=False), help="Board folder (results/, README.md, index.html).")


@main.group()
def leaderboard():
    """The ImageNet-Hard leaderboard: build the pages, accept results, publish to a Space.

    \b
    Example:
      imhard leaderboard add ~/.cache/imagenet-hard/scores/my_model.json
      imhard leaderboard build
    """


@leaderboard.command("build")
@board_dir_option
@click.option("--no-reported", is_flag=True, help="Leave out the published (reported) rows.")
@click.option("--saturation-threshold", type=click.FloatRange(0, 1, min_open=True), default=None,
              metavar="FRACTION", help="Save the top-1 accuracy at which a dataset version is "
              "flagged no longer hard in <dir>/settings.json (a board setting; default 0.5).")
def build_cmd(board_dir, no_reported, saturation_threshold):
    """Write <dir>/README.md and <dir>/index.html from <dir>/results/*.json and print the board.

    The pages end with the saturation watch: per dataset version, the best verified top-1, how
    it rose, and whether it reached the board's saturation threshold (no longer hard).

    \b
    Example:
      imhard leaderboard build --dir leaderboard
    """
    from ..leaderboard import build_board
    from ..leaderboard.saturation import write_settings

    if saturation_threshold is not None:
        write_settings(board_dir, saturation_threshold=saturation_threshold)
    built = build_board(board_dir, include_reported=not no_reported)
    click.echo(built.table)
    for w in built.watches:
        state = "NO LONGER HARD" if w.saturated else "hard"
        click.echo(f"\n{w.label}: best verified {100 * w.best.accuracy:.2f}% ({w.best.name}), "
                   f"{len(w.records)} record(s); {state} at {100 * w.threshold:.0f}%")
    click.echo(f"\nwrote {built.readme} and {built.html}")


@leaderboard.command("add")
@click.argument("result", type=click.Path(dir_okay=False))
@board_dir_option
@click.option("--fingerprint", default=None,
              help="Expected dataset fingerprint (default: that of the local published dataset).")
@click.option("--dataset", default=None, metavar="DIR_OR_HUB_ID",
              help="Dataset to check against (default <home>/dist/imagenet-hard).")
@click.option("--replace", is_flag=True, help="Overwrite an entry of the same name.")
@home_option
def add_cmd(result, board_dir, fingerprint, dataset, replace, home):
    """Check a result JSON (+ its predictions parquet) and copy it into <dir>/results.

    Checks the schema, the dataset fingerprint, that the predictions' hash matches, that every
    claimed number follows from the predictions, and (with the dataset here) from its labels.
    A suite result (imhard score --suite) is checked set by set.

    \b
    Example:
      imhard leaderboard add ~/.cache/imagenet-hard/scores/efficientnet_lite0.json
      imhard leaderboard add ~/.cache/imagenet-hard/scores/my_model.suite.json
    """
    from ..leaderboard import add_result, add_suite
    from ..score.suite import is_suite

    if is_suite(result):
        if fingerprint:
            raise click.BadParameter("a suite result carries one fingerprint per set; --fingerprint "
                                     "applies to single results", param_hint="--fingerprint")
        added = add_suite(result, board_dir, home=home, dataset=dataset, replace=replace)
        checked = ("labels re-checked" if added.checked_labels else
                   f"labels not checked for {', '.join(added.unchecked)}: not built here")
    else:
        added = add_result(result, board_dir, fingerprint=fingerprint, dataset=dataset, home=home,
                           replace=replace)
        checked = ("labels re-checked" if added.checked_labels
                   else "fingerprint given, labels not here")
    click.echo(f"added {added.name} → {added.result} ({checked}); run `imhard leaderboard build`")


@leaderboard.command("rescore-on")
@click.argument("version", metavar="X.Y.Z")
@board_dir_option
@click.option("--dataset", type=click.Path(file_okay=False), default=None,
              help="The versioned folder (default <home>/dist/imagenet-hard).")
@click.option("--write", is_flag=True,
              help="Write each carried result as NAME.vX.Y.Z.json (+ predictions) in <dir>/results.")
@home_option
def rescore_on_cmd(version, board_dir, dataset, write, home):
    """Which verified results carry to version X.Y.Z without re-running, recomputed exactly.

    A result carries when its predictions cover every row of X.Y.Z and no row was relabelled
    since the version it was scored on; the others need re-scoring.

    \b
    Example:
      imhard leaderboard rescore-on 1.0.0
    """
    from ..leaderboard.rescore import format_carries, rescore_on

    click.echo(format_carries(rescore_on(version, board_dir, dataset, home, write=write), version))


@leaderboard.command("push")
@click.option("--space", required=True, metavar="OWNER/NAME", help="Hugging Face Space to write.")
@board_dir_option
@click.option("--private", is_flag=True, help="Create the Space private.")
def push_cmd(space, board_dir, private):
    """Upload the built board to a Hugging Face Space (static SDK); token from HF_TOKEN or login.

    \b
    Example:
      imhard leaderboard build && imhard leaderboard push --space me/imagenet-hard-leaderboard
    """
    from ..leaderboard import push_board

    pushed = push_board(space, board_dir, private=private)
    click.echo(f"uploaded {len(pushed.files)} files → {pushed.url}")
