"""Options and parameter types shared by the commands."""

from __future__ import annotations

import click

from ..registry import Registry, normalize_name

home_option = click.option(
    "--home", type=click.Path(file_okay=False), default=None, envvar="IMHARD_HOME",
    help="Data home (default $IMHARD_HOME or ~/.cache/imagenet-hard).",
)

device_option = click.option(
    "--device", default=None, metavar="cpu|cuda[:N]",
    help="Torch device (default: cuda when available, else cpu).",
)


class RegistryName(click.ParamType):
    """A name checked against a registry while options are parsed (close matches on error)."""

    def __init__(self, registry_factory, allow_prefixed: bool = False):
        self._factory = registry_factory
        self._allow_prefixed = allow_prefixed

    @property
    def name(self) -> str:
        return self._factory().kind

    def convert(self, value, param, ctx):
        if self._allow_prefixed and ":" in value:
            return value  # ``family:name`` specs are resolved by the family's factory
        registry: Registry = self._factory()
        try:
            registry.get(value)
        except KeyError as exc:
            self.fail(str(exc), param, ctx)
        return normalize_name(value)


def source_type() -> RegistryName:
    def factory():
        from ..sources import SOURCES

        return SOURCES

    return RegistryName(factory)


def judge_type() -> RegistryName:
    """``--judge``: a registered judge name, or a ``family:name`` spec resolved by its family."""
    def factory():
        from ..judges import JUDGES

        return JUDGES

    return RegistryName(factory, allow_prefixed=True)
