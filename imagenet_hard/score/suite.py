"""``score --suite`` and ``verify`` of a suite result, by the one driver (:mod:`.harness`)."""

from .harness import ScoreRun, SuiteVerifyReport, score_suite, verify_suite
from .result import SuiteResult, is_suite, load_suite
from .sets import ScoreSet, built_tables, resolve_sets

__all__ = ["ScoreRun", "ScoreSet", "SuiteResult", "SuiteVerifyReport", "built_tables", "is_suite",
           "load_suite", "resolve_sets", "score_suite", "verify_suite"]
