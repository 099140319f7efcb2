"""Registries of named things (sources, model families, judges) in the manner of timm's
``create_model``.

Names are kebab-case; ``_`` is accepted for ``-``. Third-party packages add entries through an
entry-point group by the same ``register`` path as built-ins. Reading the names (listing, checking,
close-match errors) imports nothing: an entry-point plugin is imported the first time its entry is
fetched with :meth:`Registry.get`, so a command can check a name before any heavy import.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from .errors import unknown_name

T = TypeVar("T")

BUILT_IN = "built-in"


def normalize_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


@dataclass
class _Entry:
    """A registered object, or the loader that produces it on first use."""

    origin: str
    obj: Any = None
    loader: Callable[[], Any] | None = None


class Registry(Generic[T]):
    """A name → object table with wildcard listing, origins and close-match errors."""

    def __init__(self, kind: str, entry_point_group: str | None = None,
                 builtins: Callable[[], None] | None = None):
        self.kind = kind
        self._items: dict[str, _Entry] = {}
        self._group = entry_point_group
        self._builtins = builtins
        self._loaded = False

    def register(self, name: str, origin: str = BUILT_IN) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name`` (``origin`` says where it came from)."""
        def decorator(obj: T) -> T:
            key = normalize_name(name)
            old = self._items.get(key)
            if old is not None and old.obj is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = _Entry(origin, obj)
            return obj
        return decorator

    def register_lazy(self, name: str, loader: Callable[[], T], origin: str) -> None:
        """Register ``name`` now; ``loader()`` makes the object the first time it is fetched."""
        key = normalize_name(name)
        if key in self._items:
            raise ValueError(f"{self.kind} {key!r} is registered twice (again by {origin})")
        self._items[key] = _Entry(origin, loader=loader)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._builtins is not None:
            self._builtins()
        if self._group:
            for ep in metadata.entry_points(group=self._group):
                dist = getattr(ep, "dist", None)
                origin = f"plugin {dist.name}" if dist is not None else f"plugin {ep.module}"
                self.register_lazy(ep.name, ep.load, origin)

    def names(self, pattern: str = "*") -> list[str]:
        self._load()
        pattern = normalize_name(pattern)
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def check(self, name: str) -> str:
        """The normalised ``name`` if registered (nothing is imported), else an error that
        lists close matches."""
        self._load()
        key = normalize_name(name)
        if key in self._items:
            return key
        raise unknown_name(self.kind, name, sorted(self._items), key=key)

    def get(self, name: str) -> T:
        entry = self._items[self.check(name)]
        if entry.loader is not None:
            entry.obj, entry.loader = entry.loader(), None
        return entry.obj

    def origin(self, name: str) -> str:
        """Where ``name`` came from: ``built-in`` or ``plugin <distribution>``."""
        return self._items[self.check(name)].origin

    def __contains__(self, name: str) -> bool:
        self._load()
        return normalize_name(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
