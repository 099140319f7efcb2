"""`imhard bench` commands (being written)."""

from . import main  # noqa: F401
