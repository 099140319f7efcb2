"""The pixels every stage sees: the one image rule, and the one place image files are decoded.

**Stored pixel order.** An EXIF (or XMP) Orientation tag is never applied, as the authors'
pipeline did not apply it: their mining script loads through torchvision's ``ImageFolder`` (PIL
``Image.open(...).convert("RGB")``) and their scoring notebook through ``datasets`` 2.11, whose
``Image`` feature applied the tag only from 2.19 on. So the source table's ``width``/``height``
(build), the zoom crops (mining), the review page and the published bytes
(:mod:`imagenet_hard.imaging`) and what a scored submission receives (the scoring worker, which
reads the image column with ``decode=False`` and decodes here) are one array of pixels.

:func:`open_image` decodes a file or bytes under the rule, :func:`open_record` a ``datasets``
image value, :func:`to_rgb` is the one RGB conversion (mining converts on load, scoring after
resize and crop: :mod:`imagenet_hard.score.rgb_point`), and :func:`reorients` says whether a
viewer that applies tags would show some bytes otherwise. Torch-free: the sandboxed scoring child
imports it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InvalidValueError, MissingFileError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

#: The EXIF tag a viewer turns an image by (``PIL.ExifTags.Base.Orientation``).
ORIENTATION = 0x0112


class ImageError(InvalidValueError):
    """Image bytes that cannot be read or decoded; ``reason`` says why (in PIL's words)."""

    def __init__(self, what: str, reason: str, problem: str = "cannot be decoded"):
        super().__init__(f"{what} {problem}: {reason}")
        self.reason = reason


class ImageBombError(ImageError):
    """An image with more pixels than the caller allows (or PIL's own decompression-bomb limit)."""


def open_image(file: str | os.PathLike | bytes, *, max_pixels: int | None = None) -> Image.Image:
    """An image file (or its bytes) decoded under the image rule: stored pixel order and stored
    mode (pass it through :func:`to_rgb` for RGB); no file stays open.

    ``max_pixels``: refuse a larger image before decoding it (:class:`ImageBombError`).
    """
    from PIL import Image

    what = "image bytes" if isinstance(file, bytes) else f"image {file}"
    if isinstance(file, bytes):
        data = file
    else:
        try:
            data = Path(file).read_bytes()
        except FileNotFoundError:
            raise MissingFileError(f"image file {file} is missing; rebuild its source") from None
        except OSError as exc:
            raise ImageError(what, exc.strerror or str(exc), "cannot be read") from exc
    try:
        im = Image.open(io.BytesIO(data))
        w, h = im.size
        if max_pixels is not None and w * h > max_pixels:
            raise ImageBombError(what, f"{w}x{h} exceeds {max_pixels} pixels", "is too large")
        im.load()   # a truncated file fails only when fully decoded
        return im   # the orientation tag stays in ``info``, unapplied: the image rule
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageBombError(what, str(exc), "is too large") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(what, str(exc)) from exc


def open_record(value: dict) -> Image.Image:
    """A ``datasets`` Image value read with ``decode=False`` (``{"bytes", "path"}``), decoded by
    :func:`open_image` — not by ``datasets``, which applies the orientation tag from 2.19 on."""
    data = value.get("bytes")
    if data is None:
        if not value.get("path"):
            raise InvalidValueError("an image record has neither bytes nor a path")
        return open_image(value["path"])
    return open_image(bytes(data))


def to_rgb(image: Image.Image) -> Image.Image:
    """The image in RGB (greyscale, palette, alpha, CMYK … converted by PIL); module-level so
    DataLoader workers can pickle transforms that use it."""
    return image if image.mode == "RGB" else image.convert("RGB")


def reorients(data: bytes) -> bool:
    """Whether a viewer that applies orientation tags would show ``data`` turned or mirrored: an
    Orientation (EXIF, or XMP's ``tiff:Orientation``, both as PIL reads them) other than 1, or
    metadata PIL cannot parse (``datasets`` fails on it; re-encoding drops it)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(ORIENTATION)
    except Exception:   # any parse failure: treat as tagged, so the bytes get re-encoded
        return True
    return value not in (None, 1)
