"""Registries of named things (sources, judges) in the manner of timm's ``create_model``.

Names are kebab-case; ``_`` is accepted for ``-``. Third-party packages add entries through an
entry-point group, loaded the first time a registry is read, by the same ``register`` path as
built-ins.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


def normalize_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


class Registry(Generic[T]):
    """A name → object table with wildcard listing and close-match errors."""

    def __init__(self, kind: str, entry_point_group: str | None = None,
                 builtins: Callable[[], None] | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._group = entry_point_group
        self._builtins = builtins
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            key = normalize_name(name)
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = obj
            return obj
        return decorator

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._builtins is not None:
            self._builtins()
        if self._group:
            for ep in metadata.entry_points(group=self._group):
                obj = ep.load()
                self.register(ep.name)(obj)

    def names(self, pattern: str = "*") -> list[str]:
        self._load()
        pattern = normalize_name(pattern)
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> T:
        self._load()
        key = normalize_name(name)
        if key in self._items:
            return self._items[key]
        close = difflib.get_close_matches(key, list(self._items), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(sorted(self._items))}."
        )

    def __contains__(self, name: str) -> bool:
        self._load()
        return normalize_name(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
