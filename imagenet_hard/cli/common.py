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
    """A name checked against a registry while options are parsed (close matches on error).

    The registry is built only to check a value, never to render ``--help``: building one may
    import its entries' heavy dependencies (the judges import torch).
    """

    def __init__(self, kind: str, registry_factory, allow_prefixed: bool = False):
        self.name = kind
        self._factory = registry_factory
        self._allow_prefixed = allow_prefixed

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

    return RegistryName("source", factory)


def judge_type() -> RegistryName:
    """``--judge``: a registered judge name, or a ``family:name`` spec resolved by its family."""
    def factory():
        from ..judges import JUDGES

        return JUDGES

    return RegistryName("judge", factory, allow_prefixed=True)


def sha256_option_check(ctx, param, value: str | None) -> str | None:
    """``--sha256``: 64 hex digits, checked while parsing (before any import or download)."""
    from ..errors import InvalidValueError
    from ..files import check_sha256

    if value is None:
        return None
    try:
        return check_sha256(value, "--sha256")
    except InvalidValueError as exc:
        raise click.BadParameter(str(exc)) from None
