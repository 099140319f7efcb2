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
