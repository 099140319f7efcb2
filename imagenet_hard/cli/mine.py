"""`imhard mine`: judge every image of built sources on its 324 zoom crops; keep the unsolved."""

from __future__ import annotations

import click

from ..judges import DEFAULT_JUDGE
from .common import JudgeSpec, device_option, home_option, protocol_options
from .group import main

RULES = ("all", "majority", "any")  # mining.runs.RULES, spelled here so --help imports nothing


class JudgeOrEnsemble(JudgeSpec):
    """``--judge``: one judge spec, or ``a,b[@PRECISION],…``: an ensemble (checked, no torch)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and "," in value:
            from ..errors import ImHardError
            from ..mining.ensemble import parse_judges

            try:
                return [j.name for j in parse_judges(value)]
            except ImHardError as exc:
                self.fail(str(exc), param, ctx)
        return value if isinstance(value, list) else super().convert(value, param, ctx)


def _summary_lines(run) -> list[str]:
    s = run.summary
    lines = [
        f"{s.judge} on {', '.join(s.sources)} ({s.mode}): {s.candidates} candidates "
        f"of {s.images} images",
        f"protocol {s.protocol.describe() if s.protocol else 'not recorded'}",
        f"forward passes: {s.forward_passes} ({s.forward_passes_per_image} per image, of 324"
        f"{' and the standard 1-crop' if s.exhaustive else ''}; crop order "
        f"{s.crop_order.get('version')})",
    ]
    if s.computed_images and s.images_per_s is not None:
        lines.append(f"judged {s.computed_images} images in {s.seconds:.1f} s: "
                     f"{s.images_per_s:.2f} images/s, {s.crops_per_s:.1f} crops/s "
                     f"on {s.device} x{s.world_size}")
    if s.resumed_images:
        lines.append(f"resumed: {s.resumed_images} images came from finished shards")
    for origin, c in s.per_origin.items():
        lines.append(f"  {origin}: {c.candidates} / {c.images}")
    lines.append(f"candidates: {run.candidates_path}")
    return lines


def _run_name(ctx, param, value: str | None) -> str | None:
    """``--run``: one plain folder name, checked while parsing (before torch, before writing)."""
    from ..errors import InvalidValueError
    from ..mining.runs import check_run_name

    try:
        return None if value is None else check_run_name(value)
    except InvalidValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.option("--source", "sources", required=True, metavar="NAME[,NAME…]",
              help="Built source tables to mine (see `imhard sources`), comma-separated.")
@click.option("--judge", default=DEFAULT_JUDGE, show_default=True, type=JudgeOrEnsemble(),
              help="Classifier: clip-vit-l-14, efficientnet-lite0, timm:NAME, torchvision:NAME, "
                   "open_clip:ARCH/PRETRAINED (see `imhard models`); several, comma-separated "
                   "(each optionally SPEC@fp32|fp16|bf16), mine with an ensemble (see --rule).")
@click.option("--rule", type=click.Choice(RULES), default=None,
              help="Ensemble: an image is a candidate when all judges (default), a majority, or "
                   "any one of them get none of its crops right. Judges run cheapest first "
                   "(measured), each on the images the rule has not settled.")
@click.option("--exhaustive", is_flag=True,
              help="Judge all 324 crops of every image and store each image's correctness mask.")
@click.option("--batch-size", default=None, type=click.IntRange(min=1),
              help="Crops per forward pass, filled across images (default: 256 on CUDA, 64 on "
                   "the CPU).")
@click.option("--shard-size", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Images per shard (the unit of resumption and of torchrun work).")
@click.option("--run", "--run-name", "run", default=None, callback=_run_name,
              help="Run name under <home>/mining/ (default: JUDGE__SOURCE+SOURCE[__exhaustive]). "
                   "Rerunning a name resumes it. Under torchrun spell it --run-name (torchrun "
                   "reads --run as its own --run-path).")
@click.option("--workers", default=None, type=click.IntRange(min=0),
              help="DataLoader workers making crops (default: CPUs-1 up to 16 on CUDA, 1 on CPU).")
@click.option("--crops", type=click.Choice(["pil", "torch"]), default="pil", show_default=True,
              help="pil: pixel-identical to the paper's crops, made by the workers; torch: resized "
                   "on the device (within 2 grey levels, faster on a GPU).")
@click.option("--order-from", "order_from", default=None, metavar="RUN",
              help="Evaluate crops in the order learned from exhaustive run RUN (its greedy cover "
                   "first, then the rest in the built-in order) instead of the built-in one.")
@protocol_options
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A local checkpoint of the judge's weights (for clip-vit-l-14: the "
                   "open_clip_pytorch_model.bin of OpenAI's ViT-L/14); its SHA-256 is recorded "
                   "in run.json and pinned.")
@click.option("--limit", default=None, type=click.IntRange(min=1), metavar="N",
              help="Mine only the first N images (by id) of the sources: a quick try before "
                   "the whole run. A resume must give the same N.")
@click.option("--compile", "compile_", is_flag=True,
              help="Run the judge's model through torch.compile (minutes of compiling first; "
                   "pays on long GPU runs). Recorded in run.json; a resume must match.")
@device_option
@home_option
def mine(sources, judge, rule, exhaustive, batch_size, shard_size, run, workers, crops,
         order_from, protocol, normalization, precision, objectnet_labels, weights, limit,
         compile_, device, home):
    """Find ImageNet-Hard candidates: images none of whose 324 zoom crops the judge gets right.

    A crop is right when the judge's top-1 within the image's label space is one of its labels.
    The protocol (default paper: the authors' eval-CLIP.py) fixes the crops' normalisation, the
    precision and the ObjectNet labels; run.json records it. Writes the run folder
    <home>/mining/RUN/ (shards, candidates, summary). A killed run resumes when rerun with the
    same settings; under `torchrun` shards are split across ranks.

    \b
    Example:
      imhard mine --source sample --judge efficientnet-lite0 --device cpu
      imhard mine --source imagenet-a,imagenet-r --exhaustive --run clip-ar-full
      imhard mine --source imagenet-a --order-from clip-ar-full
      imhard mine --source objectnet --weights ~/models/vit-l-14-openai.bin --precision bf16
      torchrun --nproc-per-node 8 -m imagenet_hard mine --source imagenet --run-name in-clip
      imhard mine --source sample --judge efficientnet-lite0,efficientnet-lite0@bf16 --rule all --limit 2
    """
    if isinstance(judge, list):
        _mine_ensemble(sources, judge, rule or "all", exhaustive, batch_size, shard_size, run,
                       workers, crops, order_from, protocol, normalization, precision,
                       objectnet_labels, weights, compile_, device, home, limit)
        return
    if rule is not None:
        raise click.UsageError("--rule combines several judges: pass --judge a,b[,c]")
    from ..errors import ImHardError
    from ..jobs import is_rank_zero
    from ..mining import mine as run_mining
    from ..mining.run import check_protocol

    try:
        check_protocol(judge, protocol, normalization, precision, objectnet_labels)
    except ImHardError as exc:
        raise click.UsageError(str(exc)) from None
    names = [s.strip() for s in sources.split(",") if s.strip()]
    crop_order = None
    if order_from:
        from ..analysis import order_from_run

        crop_order = order_from_run(order_from, home)
    res = run_mining(names, judge, home=home, run=run, exhaustive=exhaustive, device=device,
                     batch_size=batch_size, shard_size=shard_size, workers=workers, crops=crops,
                     progress=True, crop_order=crop_order, protocol=protocol,
                     normalization=normalization, precision=precision,
                     objectnet_labels=objectnet_labels, weights=weights, compile=compile_,
                     limit=limit)
    if is_rank_zero():
        click.echo("\n".join(_summary_lines(res)))


def _mine_ensemble(sources, judges, rule, exhaustive, batch_size, shard_size, run, workers, crops,
                   order_from, protocol, normalization, precision, objectnet_labels, weights,
                   compile_, device, home, limit=None):
    given = [name for name, v in (("--order-from", order_from), ("--protocol", protocol),
                                  ("--normalization", normalization), ("--precision", precision),
                                  ("--weights", weights), ("--compile", compile_)) if v]
    if given:
        raise click.UsageError(f"{', '.join(given)} apply to one judge; an ensemble takes each "
                               "judge's precision as SPEC@PRECISION")
    from ..mining.ensemble import mine_ensemble

    res = mine_ensemble(sources, judges, rule, home=home, run=run, exhaustive=exhaustive,
                        device=device, batch_size=batch_size, shard_size=shard_size,
                        workers=workers, crops=crops, objectnet_labels=objectnet_labels,
                        progress=lambda line: click.echo(line, err=True), limit=limit)
    click.echo("\n".join(_summary_lines(res.run)))
    click.echo(f"rule {rule}; judges, cheapest first:")
    for name in res.order:
        cost = res.seconds_per_crop.get(name)
        timing = f", {1000 * cost:.1f} ms per crop measured" if cost else ""
        click.echo(f"  {name}: judged {res.judged[name]} images, "
                   f"{res.forward_passes[name]} crops{timing}")
