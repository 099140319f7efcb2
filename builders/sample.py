"""The offline ``sample`` source: real photos that installed packages ship, labelled by hand.

Built without network, laid out like a real source (``sample/<wnid>/<file>``). Labels were checked
by eye against the photos; where ImageNet-1k has no exact class the nearest ones are listed, as
ReaL does (a motorcycle → moped / motor scooter), which makes some of these fair review cases.
"""

from __future__ import annotations

import shutil
from importlib import resources

from imagenet_hard.labels import wnids
from imagenet_hard.sources import BuildContext, Item, SourceBuilder, register_source

#: (package, resource path, ImageNet-1k indices, what the photo shows)
PHOTOS = [
    ("skimage", "data/chelsea.png", (281, 282), "tabby cat, face close-up"),
    ("skimage", "data/coffee.png", (967, 968), "espresso in a cup on a saucer"),
    ("skimage", "data/rocket.jpg", (657, 744), "rocket on a launch pad at dusk"),
    ("skimage", "data/astronaut.png", (812,), "astronaut portrait, space shuttle model behind"),
    ("skimage", "data/camera.png", (872,), "cameraman at a tripod (greyscale)"),
    ("skimage", "data/clock_motion.png", (409, 892), "motion-blurred clock face (greyscale)"),
    ("skimage", "data/motorcycle_left.png", (665, 670), "motorcycle in a garage"),
    ("skimage", "data/horse.png", (339,), "horse silhouette (RGBA)"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", (652,), "Grace Hopper in navy uniform"),
]


@register_source
class SampleSource(SourceBuilder):
    name = "sample"
    origin = "sample"
    label_space = "in1k"
    description = "Nine real photos shipped by scikit-image and matplotlib, hand-labelled."
    licence = "scikit-image and matplotlib sample data licences (public domain / CC0 / BSD)"
    citation = "scikit-image: van der Walt et al., PeerJ 2014; matplotlib: Hunter, CiSE 2007"
    homepage = "https://scikit-image.org/docs/stable/api/skimage.data.html"
    expected = f"{len(PHOTOS)} images, < 2 MB, no download"
    shipped_with = "the installed scikit-image and matplotlib packages (no download, no --path)"

    def items(self, ctx: BuildContext):
        root = self.extract_dir(ctx)
        for package, resource, label, _what in PHOTOS:
            src = resources.files(package).joinpath(resource)
            member = f"{wnids()[label[0]]}/{resource.rsplit('/', 1)[-1]}"
            dest = root / member
            dest.parent.mkdir(parents=True, exist_ok=True)
            with resources.as_file(src) as f:
                shutil.copyfile(f, dest)
            yield Item(member=member, file=dest, label=label)
