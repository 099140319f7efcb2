"""``docs/cli.md``: every command's help, options and examples, rendered from the click commands.

``python -m imagenet_hard.cli.reference docs/cli.md`` writes it; ``tests/cli/test_reference.py``
fails when the file is stale, so the reference cannot drift from the code.
"""

from __future__ import annotations

import sys

import click

WIDTH = 100
HEADER = ("# Command reference\n\nGenerated from the commands' own help by "
          "`python -m imagenet_hard.cli.reference docs/cli.md`; do not edit by hand (a test "
          "fails when this file is stale). Every `Example:` below is run by "
          "`tests/cli/test_help_examples.py`.\n")


def _walk(cmd: click.Command, path: list[str], parent: click.Context | None):
    # The command's own context settings (``-h``), as ``imhard`` applies them: click caches the
    # help option on the command, so a help rendered without them would differ by process.
    settings = {**cmd.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    ctx = cmd.context_class(cmd, info_name=path[-1], parent=parent, **settings)
    yield path, cmd, ctx
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.list_commands(ctx)):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, [*path, name], ctx)


def render(main: click.Command | None = None) -> str:
    """The reference as Markdown: a contents list, then one section per command."""
    if main is None:
        from . import main
    entries = list(_walk(main, ["imhard"], None))
    out = [HEADER]
    for path, cmd, _ in entries[1:]:
        name = " ".join(path)
        anchor = name.replace(" ", "-")
        out.append(f"- [`{name}`](#{anchor}) — {cmd.get_short_help_str(limit=80)}")
    for path, cmd, ctx in entries:
        out += ["", f"## {' '.join(path)}", "", "```text", cmd.get_help(ctx).rstrip(), "```"]
    return "\n".join(out) + "\n"


def write(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if argv:
        with open(argv[0], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(write())
