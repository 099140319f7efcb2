"""The leaderboard: verified results (``leaderboard/results/*.json`` + predictions) and published
numbers rendered as ``README.md`` and a static ``index.html``; accepting a result after checking
it; pushing the page to a Hugging Face Space.

Modules: ``entries`` (board rows, one section per dataset fingerprint), ``reported``
(published numbers and the authors' tables), ``suites`` (suite results: per-set rows and the
suite view), ``render`` (markdown, HTML, SVG chart), ``board`` (build), ``add`` (checks before
accepting), ``push`` (Space upload).
"""

from .add import Added, add_result, add_suite
from .board import BoardBuild, build_board
from .entries import Entry, reported_entries
from .push import Pushed, push_board
from .suites import collect

__all__ = ["Added", "add_suite", "BoardBuild", "Entry", "Pushed", "add_result", "build_board", "collect",
           "push_board", "reported_entries"]
