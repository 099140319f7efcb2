"""Scoring one submission on a suite of sets, each with its own published protocol
(``imhard score my_model.py --suite``) and re-checking the result (``imhard verify``).

Modules: ``sets`` (which sets exist, their rows, labels under the protocol and fingerprints),
``images`` (the images-only files the sandboxed child reads for a source table), ``run``
(``score_suite``: one child for all sets, a cache per set), ``result`` (:class:`SuiteResult` and
its per-set predictions), ``verify`` (``verify_suite``), ``bench`` (suite overhead). Protocols
live in :mod:`imagenet_hard.score.protocols`.
"""

from .result import SuiteResult, is_suite, load_suite
from .run import SuiteRun, score_suite
from .sets import SuiteSet, built_tables, resolve_sets
from .verify import SuiteVerifyReport, verify_suite

__all__ = ["SuiteResult", "SuiteRun", "SuiteSet", "SuiteVerifyReport", "built_tables",
           "is_suite", "load_suite", "resolve_sets", "score_suite", "verify_suite"]
