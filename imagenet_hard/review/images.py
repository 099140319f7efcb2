"""Image bytes for the review page: only files inside the data home, ObjectNet's border baked in.

ObjectNet's licence asks that any image of it shown on the web carry a 1-pixel red border; the
border is drawn into the served bytes (not a CSS outline a screenshot or download would lose).
"""

from __future__ import annotations

import functools
import io
import mimetypes
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from ..errors import ImHardError, InvalidValueError, MissingFileError

RED = (255, 0, 0)
MAX_ID = 1000


class UnsafePathError(ImHardError, PermissionError):
    """A stored path that would resolve outside the data home."""


def check_id(image_id: str) -> str:
    """Refuse ids that look like paths escaping somewhere (before any lookup)."""
    parts = image_id.split("/")
    if (not image_id or len(image_id) > MAX_ID or "\\" in image_id or "\x00" in image_id
            or image_id.startswith("/") or any(p in ("", ".", "..") for p in parts)):
        raise InvalidValueError(f"not a candidate id: {image_id[:200]!r}")
    return image_id


def resolve_image(home: Path, rel_path: str) -> Path:
    root = Path(home).resolve()
    file = (root / rel_path).resolve()
    if not file.is_relative_to(root):
        raise UnsafePathError(f"image path {rel_path!r} resolves outside the data home")
    if not file.is_file():
        raise MissingFileError(f"image file {file} is missing; rebuild its source")
    return file


def needs_border(origin: str) -> bool:
    return origin.split("/", 1)[0] == "objectnet"


def add_red_border(im: Image.Image) -> Image.Image:
    """A copy of ``im`` (EXIF orientation applied) with a 1-pixel red frame."""
    im = ImageOps.exif_transpose(im)
    im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    colour = RED + ((255,) if im.mode == "RGBA" else ())
    ImageDraw.Draw(im).rectangle((0, 0, im.width - 1, im.height - 1), outline=colour, width=1)
    return im


@functools.lru_cache(maxsize=8)
def _bordered_png(file: str, mtime_ns: int, size: int) -> bytes:
    with Image.open(file) as im:
        out = add_red_border(im)
    buf = io.BytesIO()
    out.save(buf, format="PNG", compress_level=1)  # fast; PNG keeps the 1-pixel border exact
    return buf.getvalue()


def image_bytes(home: Path, rel_path: str, origin: str) -> tuple[bytes, str]:
    """``(bytes, content type)`` to serve for a candidate's image."""
    file = resolve_image(home, rel_path)
    if needs_border(origin):
        st = file.stat()
        return _bordered_png(str(file), st.st_mtime_ns, st.st_size), "image/png"
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return file.read_bytes(), kind
