"""Image bytes for the review page: only files inside the data home, with the licence rules of
their source applied (ObjectNet's red border) by :mod:`imagenet_hard.imaging`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ..errors import ImHardError, InvalidValueError, MissingFileError
from ..imaging import licence_rules, review_image

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
    """The file of a stored image path: relative, without ``..``, and inside the data home — or,
    for a source built from a ``--path`` folder (linked into the home, not copied), inside the
    folder that link points to (the build never indexed a link leading out of it)."""
    root = Path(home).resolve()
    rel = PurePosixPath(rel_path)
    if rel.is_absolute() or ".." in rel.parts or "\\" in rel_path:
        raise UnsafePathError(f"image path {rel_path!r} resolves outside the data home (it is not "
                              "a plain relative path)")
    lexical = root.joinpath(*rel.parts)
    allowed = root
    for parent in reversed(lexical.parents):  # the link nearest the home is the build's own
        if parent.is_relative_to(root) and parent != root and parent.is_symlink():
            allowed = parent.resolve()
            break
    file = lexical.resolve()
    if not file.is_relative_to(allowed):
        raise UnsafePathError(f"image path {rel_path!r} resolves outside the data home")
    if not file.is_file():
        raise MissingFileError(f"image file {file} is missing; rebuild its source")
    return file


def image_bytes(home: Path, rel_path: str, source: str) -> tuple[bytes, str]:
    """``(bytes, content type)`` to serve for a candidate's image, its source's licence rules
    applied."""
    return review_image(resolve_image(home, rel_path), licence_rules(source))
