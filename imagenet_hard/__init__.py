"""imagenet-hard: build, mine, review, publish and score the ImageNet-Hard benchmark.

Stages, each in its own module, importing only upstream ones:
``labels`` → ``download`` → ``sources`` (+ ``builders``) → ``zoom`` / ``models`` → ``judges`` →
``mining`` → ``review`` → ``publish`` → ``score`` → ``leaderboard``. ``cli`` is a thin layer over
them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("imagenet-hard")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0+unknown"

from .sources import build_source, list_sources  # noqa: E402

__all__ = ["__version__", "build_source", "list_sources"]
