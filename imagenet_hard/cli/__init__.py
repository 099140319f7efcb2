"""The ``imhard`` command line: thin click commands over the library.

Each command parses its options, calls one library function and prints. Library errors
(:class:`~imagenet_hard.errors.ImHardError`) become one-line messages and a non-zero exit.
"""

from __future__ import annotations

import click

from .. import __version__
from ..errors import ImHardError


class ImHardGroup(click.Group):
    """A group that turns library errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ImHardError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; finished work is kept and a rerun resumes.", err=True)
            ctx.exit(130)


@click.group(cls=ImHardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imhard")
def main():
    """Build, mine, review, publish and score the ImageNet-Hard benchmark.

    \b
    Example:
      imhard build --source sample && imhard mine --source sample --judge efficientnet-lite0
    """


# Each module attaches its commands to ``main``; imported for that side effect.
from . import (  # noqa: E402,F401
    analyze,
    bench,
    demo,
    leaderboard,
    mine,
    publish,
    review,
    score,
    sources,
)
