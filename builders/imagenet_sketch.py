"""ImageNet-Sketch (Wang et al.): black-and-white sketches of all 1000 ImageNet classes.

Archive ``ImageNet-Sketch.zip`` (the copy on the Hugging Face Hub, songweig/imagenet_sketch):
``sketch/<wnid>/*.JPEG``, 1000 wnid folders, ~50,889 images. ``--path`` also takes the extracted
``sketch/`` folder or the folder holding it.
"""

from __future__ import annotations

from imagenet_hard.labels import wnids
from imagenet_hard.sources import ClassFolderSource, register_source


@register_source
class ImageNetSketchSource(ClassFolderSource):
    name = "imagenet-sketch"
    origin = "imagenet_sketch"
    label_space = "in1k"
    top = "sketch"
    class_description = "ImageNet-1k wnids"
    description = "Google-image-search sketches ('sketch of …') of the 1000 ImageNet classes."
    licence = ("unknown on the Hub card; code MIT (HaohanWang/ImageNet-Sketch); images from "
               "Google image search, research use")
    citation = ("Wang, Ge, Xing, Lipton. Learning Robust Global Representations by Penalizing "
                "Local Predictive Power. NeurIPS 2019. arXiv:1905.13549")
    homepage = "https://github.com/HaohanWang/ImageNet-Sketch"
    expected = "~50,889 images in 1000 classes, 7.8 GB zip (8.4 GB extracted)"
    known_bytes = 8_400_000_000
    default_url = ("https://huggingface.co/datasets/songweig/imagenet_sketch/resolve/main/"
                   "data/ImageNet-Sketch.zip")

    def classes(self) -> dict[str, tuple[int, ...]]:
        return {w: (i,) for i, w in enumerate(wnids())}
