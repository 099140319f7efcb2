"""Image bytes for the review page: only files inside the data home, with the licence rules of
their source applied (ObjectNet's red border) by :mod:`imagenet_hard.imaging`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidValueError, MissingFileError, OutsideHomeError
from ..home import REBUILD, inside_home
from ..imaging import licence_rules, review_image

MAX_ID = 1000
#: The review database copies paths from the source tables when a run is imported.
FIX = f"{REBUILD}, then import the run again with `imhard review import`"

#: A stored path that would resolve outside the data home (the server answers 403).
UnsafePathError = OutsideHomeError


def check_id(image_id: str) -> str:
    """Refuse ids that look like paths escaping somewhere (before any lookup)."""
    parts = image_id.split("/")
    if (not image_id or len(image_id) > MAX_ID or "\\" in image_id or "\x00" in image_id
            or image_id.startswith("/") or any(p in ("", ".", "..") for p in parts)):
        raise InvalidValueError(f"not a candidate id: {image_id[:200]!r}")
    return image_id


def resolve_image(home: Path, rel_path: str) -> Path:
    """The file of a stored image path: inside the data home by the one lexical rule
    (:func:`imagenet_hard.home.inside_home`) and, once links are followed, still inside it — or,
    for a source built from a ``--path`` folder (linked into the home, not copied), inside the
    folder that link points to (the build never indexed a link leading out of it). Links count
    here because the server hands the bytes to a browser."""
    root = Path(home).resolve()
    lexical = inside_home(root, rel_path, "review database image", FIX)
    allowed = root
    for parent in reversed(lexical.parents):  # the link nearest the home is the build's own
        if parent.is_relative_to(root) and parent != root and parent.is_symlink():
            allowed = parent.resolve()
            break
    file = lexical.resolve()
    if not file.is_relative_to(allowed):
        raise UnsafePathError(f"review database image: path {rel_path!r} resolves outside the "
                              f"data home through a link; {FIX}")
    if not file.is_file():
        raise MissingFileError(f"image file {file} is missing; rebuild its source")
    return file


def image_bytes(home: Path, rel_path: str, source: str) -> tuple[bytes, str]:
    """``(bytes, content type)`` to serve for a candidate's image, its source's licence rules
    applied."""
    return review_image(resolve_image(home, rel_path), licence_rules(source))
