"""``imhard bench memory``'s measuring: the peak is the command's own, not the caller's."""

import sys

import pytest

from imagenet_hard.bench.memory import MemoryReport, MemoryRow, parse_rows, peak_of
from imagenet_hard.errors import ImHardError, InvalidValueError


def test_peak_is_the_commands_own_not_the_large_callers():
    ballast = bytearray(256 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touched: resident in this process
    small, _, _ = peak_of([sys.executable, "-c", "print(1)"])
    big, _, out = peak_of([sys.executable, "-c", "x = bytearray(96 * 2**20); "
                           "x[::4096] = b'y' * len(x[::4096]); print('ok')"])
    assert small < 64 and 96 <= big < 96 + 64 and out.strip() == "ok"
    with pytest.raises(ImHardError, match="exited 3"):
        peak_of([sys.executable, "-c", "raise SystemExit(3)"])
    del ballast


def test_rows_and_the_flat_rule():
    assert parse_rows("1000, 5000,20000") == (1000, 5000, 20000)
    for bad in ("", "5", "a,b"):
        with pytest.raises(InvalidValueError, match="--rows"):
            parse_rows(bad)
    report = MemoryReport([MemoryRow(1000, "score", 200, 1), MemoryRow(20000, "score", 240, 9),
                           MemoryRow(1000, "publish --check", 200, 1),
                           MemoryRow(20000, "publish --check", 400, 9)])
    assert report.growth("score") == 1.2 and not report.flat
    assert "publish --check: largest peak ÷ smallest 2.00 (GROWS" in "\n".join(report.lines())
