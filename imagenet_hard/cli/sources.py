"""`imhard build`, `imhard sources` and `imhard doctor`."""

from __future__ import annotations

import click

from .common import device_opt, home_option, sha256_option_check, source_type
from .group import main

#: `imhard build` options that only a derived source (imagenet-c) takes: option → keyword.
DERIVED_OPTIONS = {"--from": "base", "--corruptions": "corruptions", "--severities": "severities",
                   "--backend": "backend", "--device": "device", "--workers": "workers",
                   "--format": "image_format", "--shard-size": "shard_size", "--limit": "limit"}


@main.command()
@click.option("--source", "name", required=True, type=source_type(),
              help="Source to build (see `imhard sources`); `_` and `-` are interchangeable.")
@click.option("--url", default=None, help="Download address replacing the default (a mirror).")
@click.option("--sha256", default=None, callback=sha256_option_check,
              help="Expected SHA-256 (64 hex digits) replacing the default.")
@click.option("--path", type=click.Path(exists=True), default=None,
              help="An archive or folder you already have (required for ImageNet).")
@click.option("--force", is_flag=True, help="Rebuild even when the table exists.")
@click.option("--max-size", default=None, metavar="SIZE", envvar="IMHARD_MAX_SIZE",
              callback=lambda ctx, param, value: _check_max_size(value),
              help="Most bytes the download or the extracted archive may reach, e.g. 16G or "
                   "none [default: twice the source's known size, else 512G, and at most 200x "
                   "the archive].")
@click.option("--from", "base", default=None, metavar="imagenet-real|imagenet|sample",
              help="imagenet-c: the built source to corrupt [default: imagenet-real].")
@click.option("--corruptions", default=None, metavar="NAME,…|all|paper|benchmark|held-out",
              help="imagenet-c: corruptions to make [default: all 19].")
@click.option("--severities", default=None, metavar="1-5",
              help="imagenet-c: severities, e.g. 1-5, 3 or 1,3-5 [default: 1-5].")
@click.option("--backend", default=None, type=click.Choice(["reference", "torch"]),
              help="imagenet-c: reference (imagecorruptions-imaug, default) or torch.")
@device_opt("imagenet-c, torch backend: the device")
@click.option("--workers", default=None, type=click.IntRange(min=0),
              help="imagenet-c: worker processes that corrupt (reference backend) or decode "
                   "for the device (torch) [default: one per CPU, up to 4 for torch; 0 runs in this "
                   "process].")
@click.option("--format", "image_format", default=None, type=click.Choice(["jpeg", "png"]),
              help="imagenet-c: output files, JPEG quality 85 as ImageNet-C (default) or PNG.")
@click.option("--shard-size", default=None, type=click.IntRange(min=1),
              help="imagenet-c: images per shard, the unit of resumption and of torchrun work "
                   "[default: 64].")
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="imagenet-c: corrupt only the base's first N images by id (a quick look).")
@home_option
def build(name, url, sha256, path, force, max_size, home, **derived):
    """Download, verify and index a source into <home>/sources/NAME.parquet.

    Downloads resume when interrupted and are checked against the published checksum (or the
    one recorded by the first download). ImageNet has no public address: pass --path with
    ILSVRC2012_img_val.tar and its labels (ILSVRC2012_devkit_t12.tar.gz or
    LOC_val_solution.csv) beside it.

    imagenet-c corrupts a built source at full resolution, one table per (corruption,
    severity), named imagenet-c/CORRUPTION/SEVERITY; a killed build resumes when rerun, and
    `torchrun` splits it over machines.

    \b
    Example:
      imhard build --source imagenet-a
      imhard build --source imagenet --path ~/data/ILSVRC2012_img_val.tar
      imhard build --source imagenet-r --url http://mirror.local/imagenet-r.tar --sha256 8a7c4c3e2f6b4ba4bd7ad6ef4c7b1ba0cfbbc9ab7b7e0c2c5b0bd4a74bde8e50
      imhard build --source imagenet-c --from imagenet-real --corruptions paper --severities 1-5
      torchrun --nproc-per-node 4 -m imagenet_hard build --source imagenet-c --from imagenet
    """
    from .. import sources as lib

    src = lib.get_source(name)
    given = {k: v for k, v in derived.items() if v is not None}
    if src.derived:
        _build_derived(src, given, url, sha256, path, force, home)
        return
    if given:
        flags = [f for f, k in DERIVED_OPTIONS.items() if k in given]
        raise click.UsageError(f"{', '.join(flags)} apply to derived sources (imagenet-c) only")
    res = lib.build(name, home=home, url=url, sha256=sha256, path=path, force=force, progress=True,
                    max_size=max_size)
    if res.skipped:
        click.echo(f"{res.name}: already built ({res.kept} rows) at {res.table}; "
                   "use --force to rebuild.")
        return
    click.echo(f"{res.name}: kept {res.kept}, rejected {res.rejected} → {res.table}")
    if res.rejected:
        click.echo(f"rejects: {res.rejects}")


def _check_max_size(value: str | None) -> str | None:
    from ..download import parse_max_size
    from ..errors import InvalidValueError

    if value is not None:
        try:
            parse_max_size(value)
        except InvalidValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _build_derived(src, options, url, sha256, path, force, home) -> None:
    from .. import sources as lib
    from ..jobs import is_rank_zero

    if url or sha256 or path:
        raise click.UsageError(f"{src.name} is made from a built source (--from), not "
                               "downloaded: --url, --sha256 and --path do not apply")
    results = lib.build_derived(src.name, home=home, force=force, progress=True, **options)
    if not is_rank_zero():
        return
    built = [r for r in results if not r.skipped]
    skipped = len(results) - len(built)
    click.echo(f"{src.name}: built {len(built)} tables ({sum(r.kept for r in built)} images, "
               f"{sum(r.rejected for r in built)} rejected), {skipped} already built"
               + (" (--force rebuilds)" if skipped else ""))
    for r in results[:3]:
        click.echo(f"  {r.name}: {r.kept} rows → {r.table}")
    if len(results) > 3:
        click.echo(f"  … {len(results) - 3} more; `imhard sources` lists them, "
                   f"`imhard mine --source '{src.name}/*'` mines them all")
    rejected = [r for r in results if r.rejected]
    if rejected:
        click.echo(f"rejects: {rejected[0].rejects}" + (f" and {len(rejected) - 1} more"
                                                         if len(rejected) > 1 else ""))


@main.command("sources")
@home_option
def sources_cmd(home):
    """List every known source: licence, expected size, where it comes from, local status.

    \b
    Example:
      imhard sources
      imhard sources --home /tmp/imhard-demo
    """
    from .. import sources as lib
    from ..home import data_home

    for src, rows in lib.source_status(home):
        status = f"built, {rows} rows" if rows is not None else "not built"
        click.echo(f"{src.name:<16} {src.label_space:<14} {status}")
        click.echo(f"    {src.description}")
        click.echo(f"    size:    {src.expected}")
        click.echo(f"    licence: {src.licence}")
        click.echo(f"    from:    {src.where()}")
        if src.derived and rows is not None:
            tables = src.tables(data_home(home))
            click.echo(f"    tables:  {len(tables)} (mine them all with --source '{src.name}/*')")
            for table, n, how in tables:
                click.echo(f"      {table:<30} {n:>7} rows  {how}")


@main.command()
@home_option
def doctor(home):
    """Check this machine: torch/CUDA, free disk, built sources, cached model weights.

    \b
    Example:
      imhard doctor
    """
    from ..doctor import diagnose

    for line in diagnose(home).lines():
        click.echo(line)
