"""The one byte-size syntax (imagenet_hard.sizes): binary K/M/G/T and KiB…, decimal KB/MB/GB/TB."""

from __future__ import annotations

import pytest

from imagenet_hard.errors import InvalidValueError
from imagenet_hard.sizes import format_size, parse_size


@pytest.mark.parametrize("text, expected", [
    ("512M", 512 * 2**20), ("16G", 16 * 2**30), ("16GiB", 16 * 2**30), ("16g", 16 * 2**30),
    ("1.5 GiB", 3 * 2**29), ("2T", 2 * 2**40), ("64k", 64 * 2**10),
    ("500MB", 500 * 10**6), ("1GB", 10**9), ("1gb", 10**9), ("2TB", 2 * 10**12),
    ("2048", 2048), ("2048B", 2048), (4096, 4096),
])
def test_one_meaning_for_every_unit(text, expected):
    assert parse_size(text) == expected


def test_errors_name_the_option_and_examples():
    with pytest.raises(InvalidValueError, match=r"--max-size '12 parsecs': expected a size such as "
                                                r"16G or 512M, or none"):
        parse_size("12 parsecs", option="--max-size", none=True, examples="16G or 512M")
    with pytest.raises(InvalidValueError, match="expected a size"):
        parse_size("none")  # only where the caller allows no limit
    with pytest.raises(InvalidValueError, match=r"--memory-limit '1M' is below 64 MiB; why"):
        parse_size("1M", option="--memory-limit", minimum=64 * 2**20, below="why")
    with pytest.raises(InvalidValueError, match="is below 1 byte"):
        parse_size("0")


def test_no_limit_only_when_allowed():
    assert parse_size("none", none=True) is None and parse_size(None, none=True) is None
    assert parse_size("Unlimited", none=True) is None


def test_format_size_is_binary():
    assert format_size(3 * 2**30) == "3 GiB" and format_size(690_000_000) == "658 MiB"
    assert format_size(2**40) == "1 TiB" and format_size(1000) == "1000 bytes"
    assert format_size(None) == "none"
