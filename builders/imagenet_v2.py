"""ImageNetV2 MatchedFrequency (Recht et al.): 10,000 new test images, 10 per ImageNet-1k class.

Archive ``imagenetv2-matched-frequency.tar.gz`` as users download it from the Hugging Face dataset
``vaishaal/ImageNetV2`` (the original S3 bucket is gone): 1,264,079,360 bytes, SHA-256 as
TensorFlow Datasets records it for that address (``imagenet_v2/checksums.tsv``). It extracts to
``imagenetv2-matched-frequency-format-val/<class>/<hash>.jpeg`` where ``<class>`` is the
ImageNet-1k class **index** 0..999 written in decimal (not a wnid), the index every loader reads
as the label (``int(folder name)``). Label space: all 1000 classes. ``--path`` also takes the
extracted folder or the folder holding it. ImageNet-Hard's release lists ``imagenet_v2`` among
its origins.
"""

from __future__ import annotations

from imagenet_hard.labels import NUM_CLASSES
from imagenet_hard.sources import ClassFolderSource, register_source


@register_source
class ImageNetV2Source(ClassFolderSource):
    name = "imagenet-v2"
    origin = "imagenet_v2"
    label_space = "in1k"
    top = "imagenetv2-matched-frequency-format-val"
    class_description = "class-index folders 0..999"
    description = ("ImageNetV2 MatchedFrequency: a new ImageNet test set collected by the "
                   "original protocol (10 images per class).")
    licence = ("MIT (vaishaal/ImageNetV2 on the Hub, modestyachts/ImageNetV2); images from "
               "Flickr, research use")
    citation = ("Recht, Roelofs, Schmidt, Shankar. Do ImageNet Classifiers Generalize to "
                "ImageNet? ICML 2019. arXiv:1902.10811")
    homepage = "https://github.com/modestyachts/ImageNetV2"
    expected = "10,000 images in 1000 classes, 1.26 GB tar.gz"
    known_bytes = 1_260_000_000
    default_url = ("https://huggingface.co/datasets/vaishaal/ImageNetV2/resolve/main/"
                   "imagenetv2-matched-frequency.tar.gz")
    default_sha256 = "f0c37fdf925916b19ea1323cd9a2208cdb6959ba2c32eef2a7fc393835c9ca7c"

    def classes(self) -> dict[str, tuple[int, ...]]:
        # Only the canonical spelling: "7" is class 7, "007" or "1000" is not a class folder.
        return {str(i): (i,) for i in range(NUM_CLASSES)}
