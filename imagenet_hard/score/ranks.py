"""``imhard score --suite`` under ``torchrun``: the sets spread over ranks, rank 0 writes the result.

Each rank predicts its share of the sets (:func:`split_by_rows`; sets sharing a cache stay
together) in one child on its own GPU (``LOCAL_RANK``), into the sets' caches as a one-process
run would; once every rank has reported (:func:`imagenet_hard.jobs.finish`, no barrier), rank 0
runs the ordinary :func:`~imagenet_hard.score.harness.score_suite` on the sets it prepared,
which finds every row cached. Other ranks return None. The data home must be shared
(docs/scoring.md, "How it runs").
"""

from __future__ import annotations

import os

from .. import jobs
from . import harness


def split_by_rows(sizes: list[int], world: int) -> list[list[int]]:
    """Indices of ``sizes`` per rank: largest first, each to the rank with the fewest rows so far
    (ties: the lower rank; every rank computes the same split), each share in the original order."""
    load, shares = [0] * world, [[] for _ in range(world)]
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        r = min(range(world), key=lambda r: (load[r], r))
        load[r] += sizes[i]
        shares[r].append(i)
    return [sorted(s) for s in shares]


def _parts(asks) -> int:
    """Parts written so far in the asks' caches (the progress rank 0 watches)."""
    n = 0
    for cache in {a.cache for a in asks}:
        try:
            n += sum(1 for _ in os.scandir(harness.parts_dir(cache)))
        except OSError:
            pass
    return n


def score_suite(submission, sets=None, dataset=None, split: str = "validation",
                limit: int | None = None, out=None, home=None, options=None, baseline=None,
                tta=None):
    """:func:`~imagenet_hard.score.harness.score_suite`, its sets spread over the ranks under
    torchrun (this module's docstring); the ScoreRun on rank 0, None on the others. Outside
    torchrun: the one-process run."""
    def whole(prepared=None):
        return harness.score_suite(submission, sets=sets, dataset=dataset, split=split,
                                   limit=limit, out=out, home=home, options=options,
                                   baseline=baseline, tta=tta, prepared=prepared)

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return whole()
    opts = options or harness.RunOptions()
    prepared = harness.prepare(
        submission, lambda: harness.suite_sets(sets, dataset, split, limit, home), limit, home,
        opts, tta)
    sub, _, _, asks = prepared
    # A CPU group: it carries only the store; each rank's child takes the rank's GPU itself.
    ranks, _ = jobs.setup("cpu")
    try:
        groups = harness.by_cache(asks)
        keys = list(groups)
        share = split_by_rows([sum(len(a.indices) for a in groups[k]) for k in keys],
                              ranks.world)[ranks.rank]
        mine = [a for g in share for a in groups[keys[g]]]
        report = harness.predict(sub, mine, opts, tta) if mine else None
        if report is not None:  # rank 0's result reads the submission's METADATA from a cache
            harness.run_metadata(report, [a.cache for a in mine])

        def merge(total: list[int]):
            run = whole(prepared)  # the sets as this rank read them: not read a second time
            run.predicted = total[0]  # rank 0's own pass found every row cached
            return run

        return jobs.finish(ranks, [report.predicted if report else 0], merge,
                           progress=lambda: (_parts(asks), 0))
    finally:
        jobs.teardown(ranks)


__all__ = ["score_suite", "split_by_rows"]
