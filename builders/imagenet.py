"""ImageNet-1k validation (ILSVRC2012): 50,000 photos, flat ``ILSVRC2012_val_00000001.JPEG`` ….

There is no public download: users pass ``--path`` with ``ILSVRC2012_img_val.tar`` (image-net.org,
which needs an account) or a folder of the images. The labels come from a file found beside that
archive or inside that folder (first match wins):

1. ``LOC_val_solution.csv`` (Kaggle's ImageNet localisation challenge; wnid per image);
2. the devkit's ``ILSVRC2012_validation_ground_truth.txt`` with its ``data/meta.mat`` (an
   extracted ``ILSVRC2012_devkit_t12/`` folder, or the two files side by side);
3. the devkit archive ``ILSVRC2012_devkit_t12.tar.gz`` itself (read in memory, not extracted);
4. failing all three, images sorted into ``<wnid>/`` folders (the "PyTorch layout").

The ground truth holds ILSVRC2012 ids 1..1000, which are *not* torch indices: ``meta.mat`` maps
them to wnids, and the wnid gives the index.
"""

from __future__ import annotations

import csv
import io
import re
import tarfile
from collections.abc import Iterable
from pathlib import Path

from imagenet_hard.errors import InvalidValueError, MissingFileError, UnsafeArchiveError
from imagenet_hard.labels import NUM_CLASSES, index_of, wnid_to_index
from imagenet_hard.records import Reject
from imagenet_hard.sources import (
    BuildContext,
    Item,
    SourceBuilder,
    is_junk,
    register_source,
    walk_files,
)

VAL_RE = re.compile(r"^ILSVRC2012_val_(\d{8})\.(JPEG|jpeg|jpg|JPG|png)$")
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
LOC_CSV = "LOC_val_solution.csv"
DEVKIT_GLOB = "ILSVRC2012_devkit_t12*.tar*"
#: Label and devkit files that may sit among the images; skipped, not rejected.
LABEL_FILES = {GROUND_TRUTH, LOC_CSV, "meta.mat"}


def parse_loc_csv(text: str) -> dict[int, int]:
    """``LOC_val_solution.csv``: ``ImageId,PredictionString`` whose first token is the wnid."""
    out = {}
    for row in csv.DictReader(io.StringIO(text)):
        m = re.match(r"ILSVRC2012_val_(\d{8})$", row["ImageId"].strip())
        if m and row["PredictionString"].split():
            out[int(m[1])] = index_of(row["PredictionString"].split()[0])
    if not out:
        raise InvalidValueError(f"{LOC_CSV} holds no ILSVRC2012_val rows")
    return out


def parse_meta_mat(data: bytes) -> dict[int, int]:
    """Devkit ``meta.mat``: ILSVRC2012_ID (1..1000) → ImageNet-1k index, through the wnid."""
    from scipy.io import loadmat

    synsets = loadmat(io.BytesIO(data), squeeze_me=True)["synsets"]
    out = {int(i): index_of(str(w)) for i, w, n in zip(
        synsets["ILSVRC2012_ID"], synsets["WNID"], synsets["num_children"], strict=True)
        if int(n) == 0}
    if len(out) != NUM_CLASSES:
        raise InvalidValueError(f"meta.mat lists {len(out)} leaf classes, expected {NUM_CLASSES}")
    return out


def parse_ground_truth(text: str, id_to_index: dict[int, int]) -> dict[int, int]:
    """One ILSVRC2012 id per line, line n for ``ILSVRC2012_val_{n:08d}``."""
    ids = [int(x) for x in text.split()]
    try:
        return {n: id_to_index[i] for n, i in enumerate(ids, start=1)}
    except KeyError as exc:
        raise InvalidValueError(f"{GROUND_TRUTH} holds ILSVRC2012 id {exc} not in meta.mat") from None


#: The devkit's label files are read into memory: the real ones are a few hundred KB.
DEVKIT_MEMBER_MAX = 64 * 1024 ** 2


def _read_devkit_tar(path: Path) -> tuple[str, bytes] | None:
    gt = meta = None
    with tarfile.open(path, "r:*") as tf:
        for m in tf:
            wanted = m.isfile() and (m.name.endswith("data/" + GROUND_TRUTH)
                                     or m.name.endswith("data/meta.mat"))
            if wanted and m.size > DEVKIT_MEMBER_MAX:
                raise UnsafeArchiveError(
                    f"{path.name}: {m.name} declares {m.size} bytes where the devkit's is a few "
                    "hundred KB, so it was not read; use ILSVRC2012_devkit_t12.tar.gz from "
                    f"image-net.org or put {LOC_CSV} beside the val tar")
            if wanted and m.name.endswith("data/" + GROUND_TRUTH):
                gt = tf.extractfile(m).read().decode()
            elif wanted:
                meta = tf.extractfile(m).read()
    return (gt, meta) if gt is not None and meta is not None else None


def _find(folder: Path, name: str) -> Path | None:
    for cand in (folder / name, folder / "data" / name,
                 folder / "ILSVRC2012_devkit_t12" / "data" / name):
        if cand.is_file():
            return cand
    return None


def find_val_labels(folders: Iterable[Path]) -> tuple[dict[int, int], str] | None:
    """Val number → index, and a description of where the labels came from."""
    folders = [f for f in dict.fromkeys(folders) if f.is_dir()]
    for folder in folders:
        if (csv_path := _find(folder, LOC_CSV)) is not None:
            return parse_loc_csv(csv_path.read_text(encoding="utf-8")), str(csv_path)
    for folder in folders:
        gt, meta = _find(folder, GROUND_TRUTH), _find(folder, "meta.mat")
        if gt is not None and meta is not None:
            ids = parse_meta_mat(meta.read_bytes())
            return parse_ground_truth(gt.read_text(encoding="utf-8"), ids), str(gt)
    for folder in folders:
        for devkit in sorted(folder.glob(DEVKIT_GLOB)):
            found = _read_devkit_tar(devkit)
            if found is not None:
                return parse_ground_truth(found[0], parse_meta_mat(found[1])), str(devkit)
    return None


@register_source
class ImageNetSource(SourceBuilder):
    name = "imagenet"
    origin = "imagenet"
    label_space = "in1k"
    description = "ILSVRC2012 validation set with its original single labels."
    licence = ("ImageNet terms of access: non-commercial research and educational use only "
               "(image-net.org account)")
    citation = ("Russakovsky et al. ImageNet Large Scale Visual Recognition Challenge. "
                "IJCV 2015")
    homepage = "https://image-net.org/challenges/LSVRC/2012/"
    expected = "50,000 images, 6.4 GB tar (--path only)"
    known_bytes = 6_400_000_000
    default_md5 = None

    def extract_dir(self, ctx: BuildContext) -> Path:
        return ctx.home / "sources" / "imagenet"  # shared with imagenet-real: one extraction

    def missing_message(self) -> str:
        return ("ImageNet has no public download address: pass --path ILSVRC2012_img_val.tar "
                "(from image-net.org, which needs an account, or the gated Hub dataset "
                "ILSVRC/imagenet-1k) with ILSVRC2012_devkit_t12.tar.gz or LOC_val_solution.csv "
                "beside it; --path also takes a folder of the images holding the label file")

    def val_labels(self, ctx: BuildContext, root: Path) -> tuple[dict[int, int] | None, str]:
        folders = [root, root.resolve()]
        if ctx.path is not None:
            folders.append(ctx.path if ctx.path.is_dir() else ctx.path.parent)
        folders.append(ctx.downloads)
        found = find_val_labels(folders)
        return found if found is not None else (None, "")

    def labelled_images(self, ctx: BuildContext) -> Iterable[tuple[Path, int, int] | Reject]:
        """(file, val number, ImageNet label) for every validation image, or rejects."""
        root = self.fetch(ctx)
        labels, origin = self.val_labels(ctx, root)
        if labels is not None:
            ctx.notify(f"{self.name}: labels from {origin}")
        w2i = wnid_to_index()
        n_images = 0
        files = list(walk_files(root, ctx, skip=_not_images))
        yield from (f for f in files if isinstance(f, Reject))
        for file in sorted((f for f in files if not isinstance(f, Reject)), key=lambda f: f.name):
            m = VAL_RE.match(file.name)
            if m is None:
                if file.name not in LABEL_FILES:
                    yield Reject(ctx.relpath(file), "not an ImageNet validation file "
                                 "(expected ILSVRC2012_val_NNNNNNNN.JPEG)")
                continue
            n_images += 1
            number = int(m[1])
            if labels is not None:
                label = labels.get(number)
            else:  # the PyTorch layout: <wnid>/ILSVRC2012_val_….JPEG
                label = w2i.get(file.parent.name)
                if label is None and n_images == 1:
                    raise MissingFileError(self.missing_labels_message(root))
            if label is None:
                yield Reject(ctx.relpath(file), "no label for this image in the label file")
                continue
            yield file, number, label

    def missing_labels_message(self, root: Path) -> str:
        return (f"no ImageNet validation labels found in or beside {root}: put "
                f"{LOC_CSV}, or ILSVRC2012_devkit_t12.tar.gz, or {GROUND_TRUTH} with meta.mat "
                "beside the val tar (or inside the image folder)")

    def items(self, ctx: BuildContext) -> Iterable[Item | Reject]:
        for it in self.labelled_images(ctx):
            if isinstance(it, Reject):
                yield it
            else:
                file, _number, label = it
                yield Item(member=file.name, file=file, label=(label,))


def _not_images(name: str) -> bool:
    # An extracted devkit (or its tar) beside the images holds labels and MATLAB code, not images.
    return is_junk(name) or name.startswith("ILSVRC2012_devkit")
