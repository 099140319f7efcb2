"""Which queue a ``--board`` names: a Hub dataset repo ``OWNER/NAME`` or a folder."""

from __future__ import annotations

from pathlib import Path

from ..errors import MissingFileError
from .hub import HUB_REPO, HubQueue
from .queue import FolderQueue, Queue


def open_queue(board: str, token: str | None = None, endpoint: str | None = None) -> Queue:
    """``board``: a Hub dataset repo ``OWNER/NAME`` (when no such folder exists here) or a
    folder."""
    path = Path(board).expanduser()
    if HUB_REPO.fullmatch(board) and not path.exists() and not board.startswith((".", "/")):
        return HubQueue(board, token=token, endpoint=endpoint)
    if path.exists() and not path.is_dir():
        raise MissingFileError(f"board {board} is a file; give a folder or a Hub dataset "
                               "OWNER/NAME")
    return FolderQueue(path)
