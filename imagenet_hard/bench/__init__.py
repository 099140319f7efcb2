"""Benchmarks: a reference procedure and ours, timed on the same data in one process.

Every benchmark is a function returning a :class:`BenchReport` (what was timed, both throughputs,
their ratio, the settings, what else it measured), and ``imhard bench NAME`` prints it with
:func:`format_report`. Modules: ``report`` (the report, the printer, a timer), ``images`` (photos
to time on), ``zoom`` (the paper's zoom procedure against :func:`~imagenet_hard.zoom.zoom_crops`),
``mine`` (the paper's mining procedure against :func:`~imagenet_hard.mining.mine`), ``score``
(the scoring harness against a bare loop), ``analysis`` (the greedy cover on Python sets against
the bit-packed one; synthetic masks), ``order`` (early exit's forward passes with a learned crop
order against the heuristic: counted, not timed, so it has its own report), ``gpu`` (the GPU
targets, each figure beside its ideal on the device found: its own report, and ``make
gpu-check``). A new benchmark (the corruptions) adds a module whose
function returns a :class:`BenchReport` and a command in ``cli/bench.py`` that prints it.
Importing this package does not import torch; the benchmark functions do.
"""

from .report import BenchReport, Timing, best_time, format_report

__all__ = ["BenchReport", "Timing", "best_time", "format_report"]
