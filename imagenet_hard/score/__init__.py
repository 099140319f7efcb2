"""Scoring: run a submission file in a child process over a published dataset, record a
verifiable result, and re-check one (``imhard score`` / ``imhard verify``).

Modules: ``contract`` (what a submission defines), ``dataset`` (opening the data, fingerprint),
``worker`` (the child), ``runner`` (the parent: environment, watching), ``sandbox`` (what the
child can see, built by bubblewrap or by ``unshare`` + ``jail``), ``metrics``,
``result`` (:class:`ScoreResult` + predictions parquet), ``check`` (recomputing claims),
``harness`` (``score`` / ``verify``), ``bench`` (harness overhead), ``protocols`` (each scored
set's published protocol, ImageNet-C aggregates), ``suite`` (one submission on many sets:
``score_suite`` / ``verify_suite``).
"""

from .harness import RunOptions, ScoreRun, VerifyReport, score, verify
from .result import PROTOCOL, SCHEMA_VERSION, ScoreResult, load_result, predictions_path

__all__ = ["PROTOCOL", "RunOptions", "SCHEMA_VERSION", "ScoreResult", "ScoreRun", "VerifyReport",
           "load_result", "predictions_path", "score", "verify"]
