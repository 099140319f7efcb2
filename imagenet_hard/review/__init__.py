"""Manual review of mining candidates: a DuckDB decision store, a web page, an API.

``ReviewStore`` owns ``<home>/review.duckdb``: candidates imported from a mining run and an
append-only log of decision events (keep / remove, reason, tags, note, reviewer, time).
``current_decisions`` is what later stages (publish) read. ``serve`` / ``start_server`` run the
review page and its JSON API; while a server runs it is the only process that can open the file.
"""

from .app import ReviewServer, serve, start_server
from .report import format_candidate, format_status
from .store import (
    ApplyResult,
    DatabaseLockedError,
    ImportResult,
    ReviewStore,
    current_decisions,
    current_relabels,
    read_server_info,
)
from .vocab import PENDING, REASONS, TAGS, VERDICTS

__all__ = [
    "ApplyResult", "DatabaseLockedError", "ImportResult", "PENDING", "REASONS", "ReviewServer",
    "ReviewStore", "TAGS", "VERDICTS", "current_decisions", "current_relabels", "format_candidate", "format_status",
    "read_server_info", "serve", "start_server",
]
