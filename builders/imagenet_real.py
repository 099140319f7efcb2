"""ImageNet-ReaL (Beyer et al.): the ImageNet validation images with reassessed labels.

Same images and same ``--path`` as ``imagenet`` (one extraction serves both). Label = the original
ImageNet label first, then the ReaL labels it lacks ("IN+ReaL"); the 3,163 images whose ReaL list
is empty keep their ImageNet label. The ReaL lists come from timm's copy of ``real.json``, in
validation-file order.
"""

from __future__ import annotations

from collections.abc import Iterable

from imagenet_hard.errors import InvalidValueError
from imagenet_hard.labels import real_labels
from imagenet_hard.records import Reject
from imagenet_hard.sources import BuildContext, Item, register_source

from .imagenet import VAL_RE, ImageNetSource


def in_plus_real(in_label: int, real: tuple[int, ...]) -> tuple[int, ...]:
    return (in_label, *[r for r in real if r != in_label])


def real_only(row_id: str) -> tuple[int, ...]:
    """The ReaL labels alone of a row of this source (its ``label`` is IN ∪ ReaL), read back from
    the validation file the id names; empty for the 3,163 images ReaL left unlabelled."""
    m = VAL_RE.match(row_id.rsplit("/", 1)[-1])
    real = real_labels()
    if m is None or not 1 <= int(m[1]) <= len(real):
        raise InvalidValueError(f"row {row_id!r} names no ImageNet validation image "
                                "(ILSVRC2012_val_NNNNNNNN); is this an imagenet-real table?")
    return real[int(m[1]) - 1]


@register_source
class ImageNetRealSource(ImageNetSource):
    name = "imagenet-real"
    origin = "imagenet"  # the same photos: the published dataset's origin is "imagenet"
    protocol = "real"  # scored on the ReaL labels alone (real_only), not the IN ∪ ReaL union
    description = "ImageNet validation images labelled IN ∪ ReaL (Beyer et al. 2020)."
    licence = ("images: ImageNet terms (non-commercial research); ReaL labels: Apache-2.0 "
               "(google-research/reassessed-imagenet)")
    citation = "Beyer, Hénaff, Kolesnikov, Zhai, van den Oord. Are we done with ImageNet? 2020"
    homepage = "https://github.com/google-research/reassessed-imagenet"
    expected = "50,000 images, 6.4 GB tar (--path only; labels ship with timm)"

    def items(self, ctx: BuildContext) -> Iterable[Item | Reject]:
        real = real_labels()
        for it in self.labelled_images(ctx):
            if isinstance(it, Reject):
                yield it
                continue
            file, number, label = it
            if not 1 <= number <= len(real):
                yield Reject(ctx.relpath(file), f"no ReaL labels for validation image {number}")
                continue
            yield Item(member=file.name, file=file, label=in_plus_real(label, real[number - 1]))
