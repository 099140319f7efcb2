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

    def __init__(self, registry_factory):
        self._factory = registry_factory

    @property
    def name(self) -> str:
        return self._factory().kind

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

    return RegistryName(factory)


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
