"""The ``imhard`` command line: thin click commands over the library.

Each command parses its options, calls one library function and prints. Library errors
(:class:`~imagenet_hard.errors.ImHardError`) become one-line messages and a non-zero exit
(:mod:`.group`). Command modules import their library stage when they run, not when the CLI
starts, so ``--help`` and argument errors answer at once.
"""

# Each module attaches its commands to ``main`` (from .group); imported for that side effect.
from . import (  # noqa: F401
    analyze,
    bench,
    demo,
    host,
    leaderboard,
    mine,
    models,
    publish,
    review,
    score,
    sources,
)
from .group import main

__all__ = ["main"]
