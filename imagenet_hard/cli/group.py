"""The root ``imhard`` group: version, help options, and library errors as one-line messages.

Command modules attach their commands to :data:`main` here, and ``cli/__init__`` imports them, so
the imports run one way (``cli`` → command module → ``group``).
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
