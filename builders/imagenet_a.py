"""ImageNet-A (Hendrycks et al.): 7,500 natural adversarial photos in 200 ImageNet classes.

Archive ``imagenet-a.tar``: ``imagenet-a/<wnid>/*.jpg`` (200 wnid folders) and a README. Labels are
the folder's wnid; the label space is the 200 classes (``in_a_200``), the list timm ships.
"""

from __future__ import annotations

from imagenet_hard.labels import imagenet_a_wnids, index_of
from imagenet_hard.sources import ClassFolderSource, register_source


@register_source
class ImageNetASource(ClassFolderSource):
    name = "imagenet-a"
    origin = "imagenet_a"
    label_space = "in_a_200"
    protocol = "in-a-200"
    top = "imagenet-a"
    class_description = "ImageNet-A wnids"
    description = "Natural adversarial examples: real photos ResNet-50s misclassify, 200 classes."
    licence = "MIT (hendrycks/natural-adv-examples); photos collected from the web, research use"
    citation = ("Hendrycks, Zhao, Basart, Steinhardt, Song. Natural Adversarial Examples. "
                "CVPR 2021. arXiv:1907.07174")
    homepage = "https://github.com/hendrycks/natural-adv-examples"
    expected = "7,500 images in 200 classes, 0.69 GB tar"
    known_bytes = 690_000_000
    default_url = "https://people.eecs.berkeley.edu/~hendrycks/imagenet-a.tar"
    default_md5 = "c3e55429088dc681f30d81f4726b6595"  # the only checksum the authors' users cite

    def classes(self) -> dict[str, tuple[int, ...]]:
        return {w: (index_of(w),) for w in imagenet_a_wnids()}
