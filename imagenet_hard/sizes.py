"""Byte sizes: the one syntax every size option reads (``--memory-limit``, ``--max-size``,
``--max-shard-size``) and the one way sizes are shown.

A size is a number with an optional unit, case-insensitive: ``K``, ``M``, ``G``, ``T`` and
``KiB``, ``MiB``, ``GiB``, ``TiB`` are binary (powers of 1024: ``16G`` = ``16GiB`` = 16 × 2^30
bytes); ``KB``, ``MB``, ``GB``, ``TB`` are decimal (powers of 1000: ``500MB`` = 500,000,000
bytes, as ``huggingface_hub`` and ``datasets`` read them); ``B`` or no unit is bytes. Sizes are
shown in binary units (``658 MiB``).
"""

from __future__ import annotations

import re

from .errors import InvalidValueError

KiB, MiB, GiB, TiB = 2 ** 10, 2 ** 20, 2 ** 30, 2 ** 40

#: Unit (upper case) → bytes.
UNITS = {"": 1, "B": 1,
         "K": KiB, "M": MiB, "G": GiB, "T": TiB,
         "KIB": KiB, "MIB": MiB, "GIB": GiB, "TIB": TiB,
         "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12}
#: What an option that allows no limit accepts for it.
NO_LIMIT = ("none", "off", "unlimited")

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


def parse_size(text: str | int | None, *, option: str = "size", minimum: int = 1,
               below: str = "", none: bool = False,
               examples: str = "8G, 512M, 16GiB or 500MB") -> int | None:
    """``text`` (``"16G"``, ``"512M"``, ``"1.5GiB"``, ``"500MB"``, a byte count) as bytes.

    ``none``: ``"none"``/``"off"``/``"unlimited"`` (and ``None``) give None, no limit; otherwise
    they are errors. ``minimum``: the smallest size the caller accepts (``below`` says why, after
    a semicolon). ``option`` and ``examples`` make the error message.
    """
    if text is None and none:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        if none and str(text).strip().lower() in NO_LIMIT:
            return None
        m = _SIZE.fullmatch(str(text))
        if not m or m.group(2).upper() not in UNITS:
            raise InvalidValueError(f"{option} {text!r}: expected a size such as {examples}"
                                    + (", or none" if none else ""))
        size = int(float(m.group(1)) * UNITS[m.group(2).upper()])
    if size < minimum:
        least = format_size(minimum) if minimum > 1 else "1 byte"
        raise InvalidValueError(f"{option} {text!r} is below {least}"
                                + (f"; {below}" if below else ""))
    return size


def format_size(n: int | None) -> str:
    """Bytes in binary units, 3 significant digits (``3 GiB``, ``658 MiB``); None → ``none``."""
    if n is None:
        return "none"
    for unit, k in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB)):
        if n >= k:
            return f"{n / k:.3g} {unit}"
    return f"{n} bytes"
