"""ImageNet-R (Hendrycks et al.): 30,000 renditions (art, cartoons, sculptures …) of 200 classes.

Archive ``imagenet-r.tar``: ``imagenet-r/<wnid>/*.jpg`` (200 wnid folders) and a README. Labels
are the folder's wnid; the label space is the 200 classes (``in_r_200``), the list timm ships.
"""

from __future__ import annotations

from imagenet_hard.labels import imagenet_r_wnids, index_of
from imagenet_hard.sources import ClassFolderSource, register_source


@register_source
class ImageNetRSource(ClassFolderSource):
    name = "imagenet-r"
    origin = "imagenet_r"
    label_space = "in_r_200"
    protocol = "in-r-200"
    top = "imagenet-r"
    class_description = "ImageNet-R wnids"
    description = "Renditions (art, cartoons, graffiti, sculptures, toys …) of 200 ImageNet classes."
    licence = "MIT (hendrycks/imagenet-r); images collected from the web, research use"
    citation = ("Hendrycks et al. The Many Faces of Robustness: A Critical Analysis of "
                "Out-of-Distribution Generalization. ICCV 2021. arXiv:2006.16241")
    homepage = "https://github.com/hendrycks/imagenet-r"
    expected = "30,000 images in 200 classes, 2.1 GB tar"
    known_bytes = 2_100_000_000
    default_url = "https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar"
    default_md5 = "a61312130a589d0ca1a8fca1f2bd3337"

    def classes(self) -> dict[str, tuple[int, ...]]:
        return {w: (index_of(w),) for w in imagenet_r_wnids()}
