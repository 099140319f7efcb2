"""Photos to time on: the sample source's (shipped by scikit-image and matplotlib), or files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from ..errors import MissingFileError
from ..pixels import open_image


def sample_images(n: int | None = None) -> list:
    """The sample source's photos as PIL images; ``n`` of them, cycling, when given."""
    from ..builders.sample import PHOTOS

    images = []
    for package, resource, *_ in PHOTOS:
        with resources.as_file(resources.files(package).joinpath(resource)) as f:
            images.append(open_image(f))
    if n is not None:
        images = [images[k % len(images)] for k in range(n)]
    return images


def open_images(paths: Sequence[str | os.PathLike]) -> list:
    """The image files at ``paths``, decoded (a missing one is named)."""
    for p in paths:
        if not Path(p).is_file():
            raise MissingFileError(f"image {p} does not exist")
    return [open_image(p) for p in paths]
