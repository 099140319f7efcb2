"""The dataset fingerprint: one SHA-256 that names a benchmark's exact content.

Publishing writes it into the card, ``publish --check`` recomputes it, and scoring records it so a
result says which data it was measured on. It covers ids, label sets and image bytes, and nothing
that does not change what a model is asked (row order, shard layout, parquet encoding).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def fingerprint(rows: Iterable[tuple[str, Iterable[int], str]]) -> str:
    """SHA-256 over sorted lines ``id<TAB>sorted labels<TAB>sha256(image bytes)``.

    ``rows`` yields ``(id, labels, image_sha256)``; a dataset without ids uses the row index as id.
    """
    lines = sorted(
        f"{rid}\t{','.join(str(int(x)) for x in sorted(labels))}\t{img_sha}\n"
        for rid, labels, img_sha in rows
    )
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8"))
    return h.hexdigest()
