"""ObjectNet 1.0 (Barbu et al.): phone photos of household objects in random poses and rooms.

Archive ``objectnet-1.0.zip``, password-protected (ZipCrypto; the password is published with the
dataset): ``objectnet-1.0/images/<folder>/*.png`` (313 folders, 50,273 images) and
``objectnet-1.0/mappings/``:

- ``folder_to_objectnet_label.json``: folder → ObjectNet class name;
- ``objectnet_to_imagenet_1k.json``: ObjectNet class → "; "-joined ImageNet class names, for the
  113 classes that overlap ImageNet-1k (one ObjectNet class may map to several ImageNet ones);
- ``imagenet_to_label_2012_v2``: one ImageNet class name per line, in ILSVRC2012-id order;
- ``pytorch_to_imagenet_2012_id.json``: torch index → line of that file.

Only the 113 overlapping classes become rows; images of the other 200 classes are not rows (and
not rejects). Each row keeps two label sets, one per rule of ``imagenet_hard.label_rules``:

- ``label`` — every ImageNet class its ObjectNet class maps to (ObjectNet's official evaluation,
  ``objectnet_to_imagenet_1k.json``); label space ``objectnet_113``, the union of those classes
  (125 for the real mapping), recorded in the table's metadata. Rule ``all-mapped``.
- ``label_paper`` — the one class the ImageNet-Hard authors used for that ObjectNet class: they
  mined ObjectNet as 113 wnid folders (``objectnet_wnids`` in taesiri/ZoomIsAllYouNeed
  ``src/memo/imagenet-exps/test_calls/utils/third_party.py``, line 2225), each both label and mask.
  Those 113 wnids ship here as ``objectnet_paper_wnids.txt``; label space ``objectnet_113_paper``
  (their indices, recorded in the metadata). Rule ``paper``. The build fails unless each ObjectNet
  class maps to exactly one of them (e.g. "Alarm clock" → analog clock 409, not digital clock 530;
  "Chair" → barber chair 423, not folding chair 559 or rocking chair 765) and no two classes share
  one.

Licence: never train on it; an image shown on the web keeps a 1-pixel red border (``web_border``:
review and publish apply it through ``imagenet_hard.imaging``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from imagenet_hard.errors import InvalidValueError, MissingFileError
from imagenet_hard.labels import clip_names, index_of, lemmas, wnids
from imagenet_hard.records import Reject
from imagenet_hard.sources import (
    BuildContext,
    Item,
    SourceBuilder,
    is_junk,
    register_source,
    walk_files,
)

TOP = "objectnet-1.0"
PAPER_WNIDS_FILE = "objectnet_paper_wnids.txt"
PAPER_CLASSES = 113


def paper_indices() -> tuple[int, ...]:
    """The authors' 113 ObjectNet classes as ImageNet-1k indices, sorted (package data)."""
    text = resources.files(__package__).joinpath(PAPER_WNIDS_FILE).read_text(encoding="utf-8")
    ids = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if len(set(ids)) != PAPER_CLASSES:
        raise InvalidValueError(f"{PAPER_WNIDS_FILE} holds {len(set(ids))} distinct wnids, expected "
                                f"{PAPER_CLASSES}; reinstall imagenet-hard")
    return tuple(sorted(index_of(w) for w in ids))


def _describe(indices) -> str:
    return ", ".join(f"{i} {clip_names()[i]} ({wnids()[i]})" for i in indices)


def paper_labels(classes: dict[str, tuple[int, ...]], paper: tuple[int, ...]) -> dict[str, int]:
    """ObjectNet class → the one paper class among those it maps to; an error names any class
    with none or several, and any paper class claimed twice."""
    paper_set, out, owner = set(paper), {}, {}
    for on_class, mapped in classes.items():
        hits = [i for i in mapped if i in paper_set]
        if len(hits) != 1:
            raise InvalidValueError(
                f"ObjectNet class {on_class!r} maps to {_describe(mapped)}, of which "
                f"{len(hits)} are among the authors' {PAPER_CLASSES} ({PAPER_WNIDS_FILE}); "
                "expected exactly one: is this objectnet-1.0's objectnet_to_imagenet_1k.json?")
        if hits[0] in owner:
            raise InvalidValueError(
                f"ObjectNet classes {owner[hits[0]]!r} and {on_class!r} both map to the authors' "
                f"class {_describe(hits)}; expected one ObjectNet class per paper class")
        owner[hits[0]] = on_class
        out[on_class] = hits[0]
    return out


def imagenet_name_to_index(lines: list[str], torch_to_line: dict | None) -> dict[str, int]:
    """ImageNet class name (as written in ``imagenet_to_label_2012_v2``) → torch index.

    With ``pytorch_to_imagenet_2012_id.json`` the line numbers decide (names like "crane" occur
    twice); without it, names are matched to timm's WordNet lemmas, which the file uses.
    """
    names = [line.strip() for line in lines]
    if torch_to_line is not None:
        out: dict[str, int] = {}
        for torch_idx, line in torch_to_line.items():
            out.setdefault(names[int(line)], int(torch_idx))
        return out
    by_lemma: dict[str, int] = {}
    for i, lemma in enumerate(lemmas()):
        by_lemma[lemma] = -1 if lemma in by_lemma else i  # -1: ambiguous
    return {n: by_lemma[n] for n in names if by_lemma.get(n, -1) >= 0}


def read_mappings(mappings: Path) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """(folder → ObjectNet class, ObjectNet class → ImageNet indices) for the 113 classes."""
    need = ["folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json",
            "imagenet_to_label_2012_v2"]
    missing = [n for n in need if not (mappings / n).is_file()]
    if missing:
        raise MissingFileError(f"ObjectNet mapping files missing in {mappings}: "
                               f"{', '.join(missing)}; is this objectnet-1.0?")
    folders = json.loads((mappings / need[0]).read_text(encoding="utf-8"))
    to_imagenet = json.loads((mappings / need[1]).read_text(encoding="utf-8"))
    lines = (mappings / need[2]).read_text(encoding="utf-8").splitlines()
    torch_file = mappings / "pytorch_to_imagenet_2012_id.json"
    torch_to_line = json.loads(torch_file.read_text()) if torch_file.is_file() else None
    name_to_index = imagenet_name_to_index(lines, torch_to_line)
    classes: dict[str, tuple[int, ...]] = {}
    for on_class, joined in to_imagenet.items():
        names = [n.strip() for n in joined.split(";") if n.strip()]
        unknown = [n for n in names if n not in name_to_index]
        if unknown:
            raise InvalidValueError(f"objectnet_to_imagenet_1k.json: ObjectNet class {on_class!r} "
                                    f"maps to {unknown}, not found in imagenet_to_label_2012_v2")
        classes[on_class] = tuple(dict.fromkeys(name_to_index[n] for n in names))
    return folders, classes


@register_source
class ObjectNetSource(SourceBuilder):
    name = "objectnet"
    origin = "objectnet"
    label_space = "objectnet_113"
    protocol = "objectnet"
    description = "Household objects photographed at random poses, backgrounds and viewpoints."
    licence = ("ObjectNet licence (CC BY 4.0 with two clauses): never use it to train or tune "
               "a model; images shown on the web keep a 1-pixel red border")
    citation = ("Barbu, Mayo, Alverio, Luo, Wang, Gutfreund, Tenenbaum, Katz. ObjectNet: A "
                "large-scale bias-controlled dataset for pushing the limits of object "
                "recognition models. NeurIPS 2019")
    homepage = "https://objectnet.dev"
    web_border = True
    expected = ("50,273 images in 313 classes (~18.5k in the 113 ImageNet classes kept); a zip "
                "well over 100 GB, password-protected")
    default_url = "https://objectnet.dev/downloads/objectnet-1.0.zip"
    password = "objectnetisatestset"  # published with the dataset on objectnet.dev

    def __init__(self):
        super().__init__()
        self._space: list[int] = []  # filled by items(), read by label_spaces()
        self._paper: tuple[int, ...] = ()

    def find_top(self, root: Path) -> Path:
        for cand in (root / TOP, root):
            if (cand / "images").is_dir() and (cand / "mappings").is_dir():
                return cand
        raise MissingFileError(f"{root} holds no {TOP}/images and {TOP}/mappings; pass "
                               "objectnet-1.0.zip or its extracted folder")

    def items(self, ctx: BuildContext) -> Iterable[Item | Reject]:
        top = self.find_top(self.fetch(ctx))
        mappings = ctx.inside(top / "mappings")
        for file in mappings.iterdir():
            ctx.inside(file)  # a mapping file must not lead out either
        folders, classes = read_mappings(mappings)
        images = ctx.inside(top / "images")  # refused before anything is reported
        self._paper = paper_indices()
        paper = paper_labels(classes, self._paper)
        self._space = sorted({i for label in classes.values() for i in label})
        for on_class, mapped in classes.items():
            if len(mapped) > 1:
                ctx.notify(f"objectnet: {on_class!r} maps to {_describe(mapped)}; the authors' "
                           f"label (label_paper) is {_describe([paper[on_class]])}")
        if len(classes) != PAPER_CLASSES:
            ctx.notify(f"objectnet: the mapping lists {len(classes)} ObjectNet classes that "
                       f"overlap ImageNet-1k, objectnet-1.0 lists {PAPER_CLASSES}")
        outside = 0
        for entry in sorted(images.iterdir()):
            if is_junk(entry.name) or not entry.is_dir():
                continue
            on_class = folders.get(entry.name)
            for file in walk_files(entry, ctx):
                if isinstance(file, Reject):
                    yield file
                elif on_class is None:
                    yield Reject(ctx.relpath(file), f"unknown class folder {entry.name!r}: not "
                                 "in folder_to_objectnet_label.json")
                elif on_class not in classes:
                    outside += 1  # one of the 200 classes ImageNet-1k lacks: not a row
                else:
                    member = f"{TOP}/images/{file.relative_to(top / 'images').as_posix()}"
                    yield Item(member, file, classes[on_class], (paper[on_class],))
        ctx.notify(f"objectnet: {outside} images of classes outside the {len(classes)} that "
                   "overlap ImageNet-1k are not rows (by design, not rejects)")

    def label_spaces(self, ctx: BuildContext) -> dict[str, list[int]]:
        return {"objectnet_113": list(self._space), "objectnet_113_paper": list(self._paper)}
