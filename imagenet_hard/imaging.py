"""Images as review shows them and publish writes them: the one place both open image files and
apply a source's licence rules.

A licence rule belongs to the source (an attribute of its builder, e.g. ObjectNet's
``web_border``); :func:`licence_rules` finds the rules of the source a row came from, and
:func:`review_image` / :func:`publish_image` apply them. Today's one rule is ObjectNet's: any image
shown on the web carries a 1-pixel red border, drawn into the pixels (a CSS outline would be lost
by a screenshot or a download) and stored losslessly as PNG so every other pixel is unchanged.

EXIF orientation is kept as before: the review page shows a re-encoded image the way a browser
shows the original (orientation applied); publish keeps the stored pixel order.
"""

from __future__ import annotations

import functools
import io
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InvalidValueError, MissingFileError, UnknownNameError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

RED = (255, 0, 0)


@dataclass(frozen=True)
class LicenceRules:
    """What a source's licence asks of every image of it that is shown or published."""

    web_border: bool = False      # a 1-pixel red frame (ObjectNet)

    @property
    def any(self) -> bool:
        return self.web_border


NO_RULES = LicenceRules()


def licence_rules(source: str) -> LicenceRules:
    """The rules of ``source`` (a source name as rows record it, ``_`` or ``-``), from its builder.

    A source no installed builder knows has no rules to apply.
    """
    from .sources import SOURCES

    try:
        builder = SOURCES.get(source)
    except UnknownNameError:
        return NO_RULES
    return LicenceRules(web_border=bool(builder.web_border))


def open_image(file: str | os.PathLike | bytes) -> Image.Image:
    """An image file (or its bytes) decoded into memory, the file closed again."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(file) if isinstance(file, bytes) else file) as im:
            im.load()
            return im.copy()   # keeps ``info`` (EXIF, transparency); the file closes here
    except FileNotFoundError:
        raise MissingFileError(f"image file {file} is missing; rebuild its source") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        what = "image bytes" if isinstance(file, bytes) else f"image {file}"
        raise InvalidValueError(f"{what} cannot be decoded: {exc}") from exc


def with_border(im: Image.Image) -> Image.Image:
    """A copy of ``im`` in RGB (RGBA when it has transparency) with its outermost ring red."""
    mode = "RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB"
    out = im.convert(mode)
    w, h = out.size
    colour = RED + (255,) if mode == "RGBA" else RED
    for box in ((0, 0, w, 1), (0, h - 1, w, h), (0, 0, 1, h), (w - 1, 0, w, h)):
        out.paste(colour, box)
    return out


def has_border(im: Image.Image) -> bool:
    """Whether the ring :func:`with_border` paints is there (corners and edge midpoints)."""
    rgb = im.convert("RGB")
    w, h = rgb.size
    points = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, 0), (0, h // 2),
              (w - 1, h // 2), (w // 2, h - 1)]
    return all(rgb.getpixel(xy) == RED for xy in points)


def _png(im: Image.Image, compress_level: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=compress_level)   # PIL writes no timestamp chunk
    return buf.getvalue()


@functools.lru_cache(maxsize=8)
def _review_png(file: str, mtime_ns: int, size: int, rules: LicenceRules) -> bytes:
    from PIL import ImageOps

    im = ImageOps.exif_transpose(open_image(file))
    if rules.web_border:
        im = with_border(im)
    return _png(im, compress_level=1)   # fast; PNG keeps the 1-pixel border exact


def review_image(file: Path, rules: LicenceRules) -> tuple[bytes, str]:
    """``(bytes, content type)`` the review page serves: the file as it is, or re-encoded as PNG
    with the rules applied."""
    if not rules.any:
        return file.read_bytes(), mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    st = file.stat()
    return _review_png(str(file), st.st_mtime_ns, st.st_size, rules), "image/png"


def publish_image(data: bytes, rules: LicenceRules) -> tuple[bytes, bool]:
    """``(bytes, re-encoded)`` for the published dataset: the original bytes, or a lossless PNG
    with the rules applied (the caller names it ``.png`` then). Same input, same bytes."""
    if not rules.any:
        return data, False
    im = open_image(data)
    if rules.web_border:
        im = with_border(im)
    return _png(im, compress_level=6), True
