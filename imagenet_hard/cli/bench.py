"""`imhard bench …`: time the reference procedure against ours, in one process, and print the ratio.

Each command calls one function of :mod:`imagenet_hard.bench` and prints the
:class:`~imagenet_hard.bench.BenchReport` it returns with the one printer.
"""

from __future__ import annotations

import click

from ..models.preprocess import PRECISIONS
from .common import device_opt, device_option, judge_type, protocol_options
from .group import main
from .mine import RULES, JudgeOrEnsemble


def _print(report) -> None:
    from ..bench import format_report

    click.echo(format_report(report))


@main.group()
def bench():
    """Benchmarks that time a reference procedure and ours on the same data and print the ratio.

    \b
    Example:
      imhard bench zoom --images 4
    """


@bench.command("score")
@click.option("--images", default=128, show_default=True, help="Images in the generated dataset.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--workers", default=None, type=int, help="DataLoader workers (default: as `score`).")
@device_option
@click.option("--suite", "suite_sets", default=None, type=click.IntRange(2),
              is_flag=False, flag_value=4, metavar="[K]",
              help="Instead: the same images as one dataset against K suite sets (default 4).")
@click.option("--repeat", default=None, type=click.IntRange(1),
              help="With --suite: best of N runs of each way (default 2).")
def bench_score(images, batch_size, workers, device, suite_sets, repeat):
    """Harness overhead: `imhard score` (model/transform form) against a bare DataLoader loop;
    with --suite, `imhard score --suite` over K sets against the same images as one dataset.

    Both time EfficientNet-Lite0 over the same generated images; prints both and the ratio
    (target ≥ 0.90; with --suite, ≤ 1.10).

    \b
    Example:
      imhard bench score --images 32 --batch-size 32
      imhard bench score --suite 4 --images 32 --repeat 1
    """
    if repeat is not None and not suite_sets:
        raise click.UsageError("--repeat goes with --suite; pass --suite K as well, or drop "
                               "--repeat (the harness against the bare loop times each once)")
    if suite_sets:
        from ..bench.suite import bench_suite

        _print(bench_suite(images=images, sets=suite_sets, batch_size=batch_size,
                           workers=workers, device=device, echo=lambda m: click.echo(m, err=True),
                           **({"repeat": repeat} if repeat else {})))
        return
    from ..bench.score import bench_score as run

    _print(run(images=images, batch_size=batch_size, workers=workers, device=device,
               echo=click.echo))


@bench.command("mine")
@click.option("--judge", default="efficientnet-lite0", show_default=True, type=JudgeOrEnsemble(),
              help="Judge spec (as `imhard mine`); open_clip:ARCH/random is ARCH with random "
                   "weights (same FLOPs as the trained model; for GPU timing offline). Several, "
                   "comma-separated (each optionally SPEC@fp32|fp16|bf16): the ensemble's cost "
                   "against each judge alone instead.")
@click.option("--rule", type=click.Choice(RULES), default=None,
              help="The ensemble's rule (as `imhard mine`; default all).")
@click.option("--images", default=4, show_default=True, type=click.IntRange(min=1),
              help="How many images (the first ones of the source, by id).")
@click.option("--source", default=None,
              help="A built source to take images from (default: the sample photos).")
@click.option("--batch-size", default=None, type=click.IntRange(min=1),
              help="Crops a batch (default: as `imhard mine`, 256 on CUDA and 64 on the CPU).")
@click.option("--workers", default=None, type=click.IntRange(min=0),
              help="Engine DataLoader workers (default: as `imhard mine`).")
@click.option("--peak-tflops", default=None, type=float,
              help="The GPU's dense bf16 peak, when its name is not in the built-in table.")
@click.option("--compile", "compile_", is_flag=True,
              help="The judge through torch.compile (as `imhard mine --compile`).")
@device_option
@click.option("--home", type=click.Path(file_okay=False), default=None, envvar="IMHARD_HOME",
              help="Data home holding --source.")
@protocol_options
def bench_mine(judge, rule, images, source, batch_size, workers, peak_tflops, compile_, device,
               home, protocol, normalization, precision, objectnet_labels):
    """Mining: the paper's procedure (re-resize per anchor, float crops, one image at a time,
    exhaustive) against `imhard mine`, exhaustive and with early exit, same images and judge.

    Both judge under one mining protocol (as `imhard mine`; the report names it). Prints
    images/s of each and the ratios, early exit's forward passes per image, and on CUDA crops/s
    and the fraction of the GPU's bf16 dense peak from the judge's FLOPs.

    With an ensemble (--judge a,b[,c]): each judge mines the images alone with early exit, then
    the ensemble does under --rule. Prints each one's forward passes (exact) and seconds, the sum
    of the singles and whether the ensemble costs at most that, and every judge order's forward
    passes (replayed from the single runs) with the worst order's factor over the chosen one.

    \b
    Example:
      imhard bench mine --images 1 --device cpu
      imhard bench mine --judge open_clip:ViT-L-14/random --images 32 --batch-size 256 --device cuda
      imhard bench mine --judge efficientnet-lite0,efficientnet-lite0@bf16 --images 1 --device cpu
    """
    if isinstance(judge, list):
        if compile_:
            raise click.UsageError("--compile applies to one judge")
        _bench_ensemble(judge, rule or "all", images, source, batch_size, workers, peak_tflops,
                        device, home, protocol, normalization, precision, objectnet_labels)
        return
    if rule is not None:
        raise click.UsageError("--rule combines several judges: pass --judge a,b[,c]")
    from ..bench.mine import bench_mine as run
    from ..errors import ImHardError
    from ..mining.run import check_protocol

    try:
        check_protocol(judge, protocol, normalization, precision, objectnet_labels)
    except ImHardError as exc:
        raise click.UsageError(str(exc)) from None
    _print(run(judge=judge, images=images, source=source, home=home, device=device,
               batch_size=batch_size, workers=workers, peak_tflops=peak_tflops,
               echo=lambda m: click.echo(m, err=True), protocol=protocol,
               normalization=normalization, precision=precision,
               objectnet_labels=objectnet_labels, compile=compile_))


def _bench_ensemble(judges, rule, images, source, batch_size, workers, peak_tflops, device, home,
                    protocol, normalization, precision, objectnet_labels):
    given = [name for name, v in (("--peak-tflops", peak_tflops), ("--protocol", protocol),
                                  ("--normalization", normalization),
                                  ("--precision", precision)) if v]
    if given:
        raise click.UsageError(f"{', '.join(given)} apply to one judge; an ensemble takes each "
                               "judge's precision as SPEC@PRECISION")
    from ..bench.ensemble import bench_ensemble

    report = bench_ensemble(judges, rule, images=images, source=source, home=home, device=device,
                            batch_size=batch_size, workers=workers,
                            objectnet_labels=objectnet_labels,
                            echo=lambda m: click.echo(m, err=True))
    click.echo(report.summary())


@bench.command("protocol")
@click.option("--judge", default="efficientnet-lite0", show_default=True, type=judge_type(),
              help="Judge spec (as `imhard mine`).")
@click.option("--images", default=9, show_default=True, type=click.IntRange(min=1),
              help="How many images (the first ones of the source, by id); all 324 crops each.")
@click.option("--source", default=None,
              help="A built source to take images from (default: the sample photos).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--protocol", type=click.Choice(["paper", "native"]), default=None,
              help="The reference protocol (default: paper).")
@click.option("--objectnet-labels", type=click.Choice(["paper", "all-mapped"]), default=None,
              help="Override the reference's ObjectNet rule.")
@click.option("--precision", type=click.Choice(list(PRECISIONS)), default=None,
              help="Override the reference's precision (--vary math needs a CLIP judge at fp16).")
@click.option("--vary", type=click.Choice(["normalization", *PRECISIONS, "math"]),
              multiple=True,
              help="Only this variant (repeatable; default: the normalisation and every "
                   "precision): the other normalisation, a precision, or math: a CLIP judge's "
                   "other fp16 arithmetic (clip.load's fp16 weights against fp16 autocast over "
                   "fp32 weights). fp16 on a CPU can be ~20x slower than fp32.")
@device_option
@click.option("--home", type=click.Path(file_okay=False), default=None, envvar="IMHARD_HOME",
              help="Data home holding --source.")
def bench_protocol(judge, images, source, batch_size, protocol, objectnet_labels, precision,
                   vary, device, home):
    """What each mining-protocol knob changes: the judge under a protocol against every other
    precision and normalisation, on the same crops.

    Prints crops/s of each and, against the reference, the share of crops whose top-1 changes,
    the crop verdicts and the candidates that flip.

    \b
    Example:
      imhard bench protocol --images 1 --device cpu --vary bf16
      imhard bench protocol --judge open_clip:ViT-B-32/openai --images 32 --device cuda
      imhard bench protocol --judge open_clip:ViT-B-32/openai --device cuda --precision fp16 --vary math
    """
    from ..bench.protocol import bench_protocol as run

    _print(run(judge=judge, images=images, source=source, home=home, device=device,
               batch_size=batch_size, protocol=protocol, objectnet_labels=objectnet_labels,
               precision=precision, echo=lambda m: click.echo(m, err=True),
               **({"vary": vary} if vary else {})))


@bench.command("zoom")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--images", "n_images", default=4, show_default=True,
              help="How many sample photos to time (ignored when FILES are given).")
@click.option("--device", default=None, metavar="cpu|cuda[:N]",
              help="Also time the torch path on this device (default: cuda when available).")
@click.option("--repeat", default=1, show_default=True, help="Best of this many runs.")
@click.option("--agreement", is_flag=True,
              help="Also measure the torch path's pixel and EfficientNet-Lite0 top-1 differences.")
def bench_zoom(files, n_images, device, repeat, agreement):
    """The paper's zoom procedure (resize per crop, float) against zoom_crops, same images.

    Prints crops/s of each and the speed-up (target ≥ 10x); with a device, also the torch
    path's crops/s.

    \b
    Example:
      imhard bench zoom --images 4
      imhard bench zoom photo1.jpg photo2.jpg --device cuda
    """
    from ..bench.images import open_images
    from ..bench.zoom import bench_zoom as run

    images = open_images(files) if files else None
    _print(run(images=images, n_images=n_images, device=device, repeat=repeat,
               agreement=agreement))


@bench.command("corrupt")
@click.option("--size", default=None, metavar="WxH",
              help="Resize the photo (scikit-image's rocket, 640x427) to WxH, e.g. 4000x3000.")
@click.option("--image", "image_path", default=None, type=click.Path(dir_okay=False),
              help="Time on this photo instead.")
@click.option("--corruptions", default="all", show_default=True,
              help="Comma-separated names, or all, paper, benchmark, held-out.")
@click.option("--severity", default=5, show_default=True, type=click.IntRange(1, 5))
@click.option("--repeat", default=3, show_default=True, type=click.IntRange(min=1),
              help="Timed calls per backend (after one warm-up); images/s = 1 / median.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="Threads for OpenCV and torch (1: one core against one core).")
@device_opt("The torch backend's device")
def bench_corrupt(size, image_path, corruptions, severity, repeat, threads, device):
    """ImageNet-C corruptions: reference (imagecorruptions-imaug) against the torch backend.

    Per corruption, images/s of both backends on the same photo in this process, and the ratio.

    \b
    Example:
      imhard bench corrupt --corruptions zoom_blur,contrast --repeat 1
      imhard bench corrupt --size 1600x1200 --corruptions zoom_blur,glass_blur --repeat 1
    """
    from ..bench.corrupt import bench_corrupt as run
    from ..bench.corrupt import parse_image_size, photo
    from ..corruptions.build import parse_corruptions

    names = parse_corruptions(corruptions)
    image = photo(image_path, parse_image_size(size) if size else None)
    _print(run(image=image, names=names, severity=severity, repeat=repeat, threads=threads,
               device=device, echo=lambda m: click.echo(m, err=True)))


@bench.command("analyze")
@click.option("--images", default=13000, show_default=True, type=click.IntRange(min=1),
              help="Synthetic images (ImageNet-Hard's size by default).")
@click.option("--seed", default=0, show_default=True)
def bench_analyze(images, seed):
    """The greedy minimum set cover on Python sets against the bit-packed one, same synthetic
    exhaustive masks (same cover required), and the time of a whole `imhard analyze`.

    \b
    Example:
      imhard bench analyze --images 13000
    """
    from ..bench.analysis import bench_analysis

    _print(bench_analysis(images, seed, echo=lambda m: click.echo(m, err=True)))


@bench.command("memory")
@click.option("--rows", default="1000,5000,20000", show_default=True, metavar="N[,N…]",
              help="Row counts of the generated datasets.")
@click.option("--side", default=64, show_default=True, type=click.IntRange(min=8),
              help="Width and height of each generated image, pixels.")
@click.option("--sandbox", default="auto", show_default=True,
              type=click.Choice(["auto", "bwrap", "unshare", "none"]),
              help="What confines the scored submission (as `imhard score --sandbox`).")
def bench_memory(rows, side, sandbox):
    """Peak memory of `imhard score` and `imhard publish --check` on generated datasets of
    growing size, each command in its own process: both must stay flat in the row count.

    \b
    Example:
      imhard bench memory --rows 200,800 --side 16
    """
    from ..bench.memory import bench_memory as run
    from ..bench.memory import parse_rows

    report = run(parse_rows(rows), side, sandbox, echo=lambda m: click.echo(m, err=True))
    for line in report.lines():
        click.echo(line)


@bench.command("order")
@click.option("--judge", default="efficientnet-lite0", show_default=True, type=judge_type(),
              help="Judge that mines the photos exhaustively.")
@click.option("--variants", default=None, type=click.IntRange(min=0),
              help="Augmented copies of each sample photo (crop, flip, down-scale; seeded). "
                   "[default: 4; 0 with --run]")
@click.option("--splits", default=10, show_default=True, type=click.IntRange(min=1),
              help="Random half splits (each used both ways round).")
@device_option
@click.option("--home", type=click.Path(file_okay=False), default=None,
              help="Scratch data home for the runs (default: a new temporary folder); rerun "
                   "with the same one to resume. With --run, the data home holding RUN.")
@click.option("--run", "run", metavar="RUN", default=None,
              help="Replay exhaustive run RUN (`imhard mine --exhaustive`) instead of mining "
                   "the sample photos.")
def bench_order(judge, variants, splits, device, home, run):
    """Early exit's forward passes per image with a crop order learned from an exhaustive run
    (`imhard mine --order-from`) against the built-in heuristic, on held-out images.

    Mines the sample photos and augmented variants exhaustively (or takes the masks of an
    exhaustive run you have), learns the order on one half, replays both orders on the other
    (exactly the engine's n_forward); synthetic masks too. It counts forward passes rather than
    timing them.

    \b
    Example:
      imhard bench order --run sample-full --splits 2
    """
    from ..bench.order import bench_order as bench

    if variants is None:
        variants = 0 if run else 4
    report = bench(judge=judge, variants=variants, home=home, device=device, splits=splits,
                   run=run, echo=lambda m: click.echo(m, err=True))
    click.echo(report.summary())


@bench.command("gpu")
@click.option("--only", default=None, metavar="FIGURES",
              help="Comma-separated figures to measure: mine, early-exit, score, corrupt "
                   "(default: all).")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the report as JSON here.")
@device_option
def bench_gpu(only, json_path, device):
    """Issue 23's GPU targets on the device found, each figure beside its ideal there: exhaustive
    mining crops/s with CLIP ViT-L/14 (random weights, start-up excluded), early-exit mining
    images/s, scoring a ResNet-50 model+transform submission end to end, and the ImageNet-C torch
    backend against the reference on zoom_blur at 2000×1500.

    Without CUDA it prints the same table with CPU figures at tiny sizes and says no GPU was
    found. Ideals are the device's peak (a data-sheet table by GPU name, else a timed matrix
    product) over each item's FLOPs.

    On a CPU the mining figures take a minute or two (a full pass of 325 crops, twice).

    \b
    Example:
      imhard bench gpu --only corrupt
    """
    keys = [k.strip() for k in only.split(",") if k.strip()] if only else None
    from ..bench.gpu import FIGURES

    bad = [k for k in keys or () if k not in FIGURES]
    if bad:
        raise click.BadParameter(f"unknown figure {bad[0]!r}; choose from {', '.join(FIGURES)}",
                                 param_hint="--only")
    from ..bench.gpu import bench_gpu as run
    from ..bench.gpu import format_gpu_report, write_report

    report = run(device=device, only=keys, echo=lambda m: click.echo(m, err=True))
    click.echo(format_gpu_report(report))
    if json_path:
        click.echo(f"wrote {write_report(report, json_path)}")
