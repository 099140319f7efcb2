"""``imhard fetch-weights FILE``: fill the weight caches the scoring sandbox reads
(:func:`sandbox.weight_caches`; ``imhard score`` never downloads) by importing and loading a
trusted submission *unconfined*, with network and the user's environment, in the scoring
worker's child process with no rows to predict, then report what the caches gained.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import sandbox
from ..errors import SubmissionError
from ..sizes import format_size
from .harness import submission_file
from .runner import run_child
from .worker import ChildJob


@dataclass
class FetchReport:
    submission: Path
    #: What the weight caches gained: (path, bytes added): a file of the torch checkpoints
    #: folder, or a ``models--*`` repository of the hub cache.
    added: list[tuple[str, int]] = field(default_factory=list)
    caches: list[str] = field(default_factory=list)

    def summary(self) -> str:
        name = self.submission.name
        if not self.added:
            return (f"{name}: nothing new in the weight caches the sandbox reads "
                    f"({', '.join(self.caches)}): its weights were there already, ship in a "
                    "package, or went somewhere the sandbox does not show")
        lines = [f"{name}: fetched into the weight caches the sandbox reads (read-only there):"]
        lines += [f"  {path} (+{format_size(n)})" for path, n in self.added]
        lines.append(f"now score it: imhard score {shlex.quote(str(self.submission))}")
        return "\n".join(lines)


def _bytes(path: Path) -> int:
    """Bytes of the regular files at or below ``path`` (links not followed)."""
    if path.is_file() and not path.is_symlink():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total


def cache_entries() -> dict[str, int]:
    """Bytes of each entry of the weight caches: a file of ``$TORCH_HOME/hub/checkpoints``, or a
    ``models--*`` repository of the hub cache."""
    out = {}
    for root in map(Path, sandbox.weight_caches()):
        entries = [root] if root.name.startswith("models--") else (
            sorted(root.iterdir()) if root.is_dir() else [])
        for entry in entries:
            out[str(entry)] = _bytes(entry)
    return out


def fetch_weights(submission: str | Path, device: str = "cpu",
                  on_output: Callable[[str], None] | None = None) -> FetchReport:
    """Import and load ``submission`` (the scoring child, with no rows to predict) unconfined,
    with network and the whole environment, so that the weights it downloads land in the caches
    the sandbox reads; ``on_output`` gets each line it prints. A :class:`SubmissionError` with
    its traceback when it fails."""
    path = submission_file(submission)
    before = cache_entries()
    job = ChildJob(submission=str(path), device=device, batch_size=1, workers=0, segments=[])
    try:
        run_child(job, path.name, load_timeout=math.inf, on_output=on_output, sandbox_tool="none",
                  environ=dict(os.environ))
    except SubmissionError as exc:
        raise SubmissionError(f"{path.name}: fetching its weights failed, so fix what the "
                              f"submission raised and run again:\n{exc}") from None
    after = cache_entries()
    added = [(p, n - before.get(p, 0)) for p, n in after.items() if n > before.get(p, 0)]
    return FetchReport(path, added, [sandbox.torch_checkpoints(),
                                     os.path.join(sandbox.hub_cache(), "models--*")])
