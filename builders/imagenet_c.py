"""Full-resolution ImageNet-C (Hendrycks & Dietterich): a built source's images corrupted by the
19 ImageNet-C corruptions at severities 1..5, one source table per (corruption, severity).

Made from a built table, not downloaded: ``--from imagenet-real`` (default; the paper's IN+ReaL
labels), ``imagenet`` or the offline ``sample``. The original ImageNet-C resized to 256 and
centre-cropped to 224 before corrupting; these are the full-size images, saved as JPEG quality 85
as ImageNet-C was (PNG on request). The work is done by :mod:`imagenet_hard.corruptions.build`.
"""

from __future__ import annotations

from imagenet_hard.errors import InvalidValueError
from imagenet_hard.sources import BuildContext, SourceBuilder, register_source


@register_source
class ImageNetCSource(SourceBuilder):
    name = "imagenet-c"
    origin = "imagenet_c"
    label_space = "in1k"
    protocol = "imagenet-c"
    derived = True
    description = ("Full-resolution ImageNet-C: 19 corruptions x 5 severities of a built "
                   "source's images, one table each (imagenet-c/<corruption>/<severity>).")
    licence = ("images: the base source's terms (ImageNet: non-commercial research); frost "
               "overlays: imagecorruptions-imaug package data (Apache-2.0)")
    citation = ("Hendrycks, Dietterich. Benchmarking Neural Network Robustness to Common "
                "Corruptions and Perturbations. ICLR 2019")
    homepage = "https://github.com/hendrycks/robustness"
    expected = "95 tables of the base's images (ImageNet: 95 x 50,000); made locally, no download"
    made_from = "--from imagenet-real (default), imagenet or sample: a built table, no download"

    def items(self, ctx: BuildContext):
        raise InvalidValueError("imagenet-c is made from another source's table: use "
                                "imagenet_hard.sources.build_derived('imagenet-c', base=...) or "
                                "`imhard build --source imagenet-c --from BASE`")

    def build_tables(self, home, force: bool = False, progress: bool = False, **options):
        from imagenet_hard.corruptions.build import CorruptOptions, build_imagenet_c

        return build_imagenet_c(home, CorruptOptions(**options), force=force, progress=progress)

    def tables(self, home) -> list[tuple[str, int, str]]:
        from imagenet_hard.corruptions.build import built_tables

        return [(t.name, t.rows, f"from {t.base}, {t.backend} backend, {t.image_format}")
                for t in built_tables(home)]
