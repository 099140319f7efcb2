"""Images as review shows them and publish writes them: tag-free bytes, and a source's licence
rules applied.

Every stage decodes images by the one image rule of :mod:`imagenet_hard.pixels` (stored pixel
order: an EXIF orientation tag is never applied). Viewers that do apply the tag (browsers,
``datasets`` ≥ 2.19, the Hub viewer) would show a tagged image turned, so the bytes this module
hands out never carry one: :func:`review_image` and :func:`publish_image` keep the original bytes
only when :func:`~imagenet_hard.pixels.reorients` is false, and otherwise re-encode the stored
pixels as lossless PNG, which carries no tag.

A licence rule belongs to the source (an attribute of its builder, e.g. ObjectNet's
``web_border``); :func:`licence_rules` finds the rules of the source a row came from, and
:func:`review_image` / :func:`publish_image` apply them. Today's one rule is ObjectNet's: any image
shown on the web carries a 1-pixel red border, drawn into the pixels (a CSS outline would be lost
by a screenshot or a download) and stored losslessly as PNG so every other pixel is unchanged.
"""

from __future__ import annotations

import functools
import io
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UnknownNameError
from .pixels import open_image, reorients, to_rgb

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
    rgb = to_rgb(im)
    w, h = rgb.size
    points = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1), (w // 2, 0), (0, h // 2),
              (w - 1, h // 2), (w // 2, h - 1)]
    return all(rgb.getpixel(xy) == RED for xy in points)


def _png(im: Image.Image, compress_level: int) -> bytes:
    buf = io.BytesIO()
    # PIL writes no timestamp chunk, and neither EXIF nor XMP unless asked: the PNG is tag-free.
    im.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def _portable(data: bytes, rules: LicenceRules, compress_level: int) -> tuple[bytes, bool]:
    """``(bytes, re-encoded)``: ``data`` itself when no rule applies and no viewer would turn it,
    else a PNG of its stored pixels with the rules applied."""
    if not rules.any and not reorients(data):
        return data, False
    im = open_image(data)
    if rules.web_border:
        im = with_border(im)
    return _png(im, compress_level), True


@functools.lru_cache(maxsize=8)
def _review_bytes(file: str, mtime_ns: int, size: int, rules: LicenceRules) -> tuple[bytes, bool]:
    return _portable(Path(file).read_bytes(), rules, compress_level=1)   # fast; PNG stays exact


def review_image(file: Path, rules: LicenceRules) -> tuple[bytes, str]:
    """``(bytes, content type)`` the review page serves: the file as it is, or re-encoded as PNG
    (rules applied, orientation tag gone) so the browser shows the pixels mining judged."""
    st = file.stat()
    data, reencoded = _review_bytes(str(file), st.st_mtime_ns, st.st_size, rules)
    if reencoded:
        return data, "image/png"
    return data, mimetypes.guess_type(file.name)[0] or "application/octet-stream"


def publish_image(data: bytes, rules: LicenceRules) -> tuple[bytes, bool]:
    """``(bytes, re-encoded)`` for the published dataset: the original bytes, or a lossless PNG
    (rules applied, orientation tag gone; the caller names it ``.png`` then), so ``datasets``
    of any version decodes the stored pixels. Same input, same bytes."""
    return _portable(data, rules, compress_level=6)
