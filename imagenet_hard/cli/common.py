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
    import its entries' heavy dependencies.
    """

    def __init__(self, kind: str, registry_factory):
        self.name = kind
        self._factory = registry_factory

    def convert(self, value, param, ctx):
        registry: Registry = self._factory()
        try:
            registry.check(value)
        except KeyError as exc:
            self.fail(str(exc), param, ctx)
        return normalize_name(value)


def source_type() -> RegistryName:
    def factory():
        from ..sources import SOURCES

        return SOURCES

    return RegistryName("source", factory)


class JudgeSpec(click.ParamType):
    """``--judge``: a judge name or a model spec, checked while options are parsed (no torch)."""

    name = "judge"

    def convert(self, value, param, ctx):
        from ..errors import ImHardError
        from ..judges import check_judge

        try:
            return check_judge(value)
        except ImHardError as exc:
            self.fail(str(exc), param, ctx)


def judge_type() -> JudgeSpec:
    """``--judge``: a registered judge name, or a ``family:name`` model spec."""
    return JudgeSpec()


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
