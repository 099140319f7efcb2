"""Scoring: run a submission file in a sandboxed child process over a published dataset or a
suite of sets, record a verifiable result, and re-check one (``imhard score`` / ``imhard verify``).
"""

from .harness import RunOptions, ScoreRun, VerifyReport, score, verify
from .result import PROTOCOL, SCHEMA_VERSION, ScoreResult, load_result, predictions_path

__all__ = ["PROTOCOL", "RunOptions", "SCHEMA_VERSION", "ScoreResult", "ScoreRun", "VerifyReport",
           "load_result", "predictions_path", "score", "verify"]
