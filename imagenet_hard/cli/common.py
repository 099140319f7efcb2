"""Options and parameter types shared by the commands."""

from __future__ import annotations

import click

from ..registry import Registry, normalize_name

home_option = click.option(
    "--home", type=click.Path(file_okay=False), default=None, envvar="IMHARD_HOME",
    help="Data home (default $IMHARD_HOME or ~/.cache/imagenet-hard).",
)

#: What ``--device`` says of its default everywhere; :func:`imagenet_hard.devices.resolve_device`
#: gives it its meaning (no value: cuda when torch sees a GPU, else cpu).
DEVICE_DEFAULT = "(default: cuda when available, else cpu)"


def device_opt(what: str = "Torch device"):
    """The one ``--device`` option: no default value, so CUDA when present; ``what`` says what
    the device runs when that is not the whole command."""
    return click.option("--device", default=None, metavar="cpu|cuda[:N]",
                        help=f"{what} {DEVICE_DEFAULT}.")


device_option = device_opt()


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


def protocol_options(command):
    """``--protocol`` and the knobs that override one of its settings each (mining, bench mine);
    choices are checked while parsing, no torch."""
    from ..label_rules import OBJECTNET_RULES
    from ..mining_protocol import DEFAULT_PROTOCOL, NORMALIZATIONS, PRECISIONS, PROTOCOLS

    options = [
        click.option("--protocol", type=click.Choice(list(PROTOCOLS)), default=None,
                     help=f"Settings that change verdicts (default: {DEFAULT_PROTOCOL}, for "
                          "every judge). paper: the authors' eval-CLIP.py for CLIP judges "
                          "(ImageNet mean/std, fp16 on CUDA, fp32 on the CPU) and "
                          "eval-IN-trained.py for classifiers (own mean/std, fp32); ObjectNet "
                          "by the authors' 113 classes. native: each model's own mean/std, "
                          "bf16 on CUDA, fp32 on the CPU, ObjectNet by all mapped classes."),
        click.option("--normalization", type=click.Choice(list(NORMALIZATIONS)), default=None,
                     help="Override: the mean/std a CLIP judge's crops are normalised with "
                          "(imagenet: as eval-CLIP.py; clip: the weights' own). Classifiers "
                          "always use their own."),
        click.option("--precision", type=click.Choice(list(PRECISIONS)), default=None,
                     help="Override: fp32 (no autocast), fp16 or bf16 autocast."),
        click.option("--objectnet-labels", type=click.Choice(list(OBJECTNET_RULES)),
                     default=None,
                     help="Override: paper (the authors' single class per ObjectNet class as "
                          "label, their 113 classes as mask) or all-mapped (every mapped class, "
                          "their union as mask)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command
