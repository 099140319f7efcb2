"""docs/cli.md is the commands' own help, regenerated: a stale copy fails here."""

from __future__ import annotations

from pathlib import Path

import click

from imagenet_hard.cli import main
from imagenet_hard.cli.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_current():
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/cli.md is stale: run `python -m imagenet_hard.cli.reference docs/cli.md`")


def test_reference_has_every_command_and_option():
    text = DOC.read_text(encoding="utf-8")

    def walk(cmd, path, parent):
        ctx = click.Context(cmd, info_name=path[-1], parent=parent)
        yield path, cmd
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, name), [*path, name], ctx)

    for path, cmd in walk(main, ["imhard"], None):
        assert f"## {' '.join(path)}\n" in text, path
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in text, (path, opt)


def test_a_changed_help_makes_the_reference_stale():
    cmd = click.Command("imhard", help="Something else entirely.")
    assert render(cmd) != DOC.read_text(encoding="utf-8")


def test_the_reference_is_the_same_after_the_commands_ran():
    """Click caches each command's help option the first time a context asks for it; the
    reference must not depend on whether a command ran before in this process."""
    from click.testing import CliRunner

    CliRunner().invoke(main, ["--help"])
    CliRunner().invoke(main, ["score", "-h"])
    assert render() == DOC.read_text(encoding="utf-8")
