"""imagenet-hard: build, mine, review, publish and score the ImageNet-Hard benchmark.

Stages, each in its own module, importing only upstream ones:
``labels`` → ``download`` → ``sources`` (+ ``builders``) → ``zoom`` / ``models`` → ``judges`` →
``mining`` → ``review`` → ``publish`` → ``score`` (its child confined by ``sandbox``) →
``leaderboard``. ``cli`` is a thin layer over them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("imagenet-hard")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "build_source", "list_sources"]


def __getattr__(name: str):
    # The shortcuts load the sources stage (PIL, pyarrow) on first use, not on import, so the
    # CLI's start-up and `--help` stay light.
    if name in ("build_source", "list_sources"):
        from . import sources

        return getattr(sources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
