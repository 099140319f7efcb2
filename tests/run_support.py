"""Finished mining runs for the review and publish tests, written the way ``mine`` writes them.

:func:`write_run` plans the run from built source tables, writes ``run.json`` and one shard through
:class:`~imagenet_hard.mining.MiningRun` and merges it with the engine's own ``merge_run``: only
the judging is skipped, so the run has exactly the record, summary and candidates of a real one.
"""

from __future__ import annotations

from imagenet_hard.home import mining_dir
from imagenet_hard.mining import MiningRun, order
from imagenet_hard.mining.plan import load_workload, run_record
from imagenet_hard.mining.run import merge_run

SETTLED_PROB = [0.9, 0.04, 0.03, 0.02, 0.01]


def write_run(home, name: str, sources: list[str], candidates: dict[str, dict],
              judge: str = "efficientnet-lite0") -> MiningRun:
    """A finished early-exit run of ``sources``: the ids in ``candidates`` (id → ``top5``,
    ``top5_prob``, ``best_crop``) are the images no crop got right; every other image is settled
    by the first crop of the order, its label on top."""
    work = load_workload(sources, home)
    unknown = set(candidates) - {im.id for im in work.images}
    assert not unknown, f"candidates not in the sources: {sorted(unknown)}"
    run = MiningRun(mining_dir(home) / name,
                    run_record(judge, work, exhaustive=False, shard_size=max(1, len(work.images))))
    run.start()
    first = order.crop_order()[0]
    rows = []
    for im in work.images:
        base = {"id": im.id, "source": im.source, "origin": im.origin, "label": list(im.label),
                "label_space": im.label_space, "n_correct": None, "mask": None}
        if im.id in candidates:
            c = candidates[im.id]
            rows.append({**base, "correct": False, "first_correct_crop": None, "n_forward": 324,
                         "best_crop": c["best_crop"], "top5": c["top5"],
                         "top5_prob": c["top5_prob"]})
        else:
            top5 = [im.label[0]] + [k for k in range(5) if k != im.label[0]][:4]
            rows.append({**base, "correct": True, "first_correct_crop": first, "n_forward": 1,
                         "best_crop": first, "top5": top5, "top5_prob": SETTLED_PROB})
    forward = sum(r["n_forward"] for r in rows)
    run.write_shard(0, rows, {"shard": 0, "rank": 0, "seconds": 0.0, "forward_passes": forward})
    return merge_run(run, None, seconds=0.0, computed_images=len(rows), computed_crops=forward,
                     world=1, device="cpu", crops="pil", batch_size=64)
