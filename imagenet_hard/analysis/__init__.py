"""Analysis: the paper's zoom statistics over an exhaustive mining run, as numbers, a report and
plots (``imhard analyze RUN``), and crop orders learned from them (``imhard mine --order-from``).

Modules: ``masks`` (reading a run into NumPy masks — the one place that reads runs), ``cover``
(greedy minimum set cover on bit-packed masks), ``stats`` (1-crop, maximum possible accuracy,
zoom groups, anchors, scales; per origin), ``ordering`` (learned crop orders, forward passes of
early exit), ``report`` (``report.md``, ``analysis.json``), ``plots`` (matplotlib, Agg).
Importing this package does not import torch or matplotlib.
"""

from .cover import Cover, greedy_cover
from .masks import NotExhaustiveError, RunMasks, load_run, masks_from_table
from .ordering import (
    OrderComparison,
    cover_of_run,
    forward_passes,
    held_out_forward_passes,
    order_from_masks,
    order_from_run,
)
from .stats import SubsetAnalysis, analyze

__all__ = [
    "Cover", "NotExhaustiveError", "OrderComparison", "RunMasks", "SubsetAnalysis", "analyze",
    "cover_of_run",
    "forward_passes", "greedy_cover", "held_out_forward_passes", "load_run", "masks_from_table",
    "order_from_masks", "order_from_run",
]
