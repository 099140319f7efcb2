"""ImageNet-1k label facts: wnids, names, the 200-class subsets, ReaL labels and label spaces.

Everything is read from files that ``timm`` (``timm/data/_info``) and ``open_clip``
(``zero_shot_metadata``) ship, never retyped, and cached after the first read. The files are found
and read without importing either package: both import torch, which costs seconds and a GiB
before ``build`` or ``review import`` could do anything.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
from pathlib import Path

from .errors import InvalidValueError, UnknownNameError

NUM_CLASSES = 1000
LABEL_SPACES = ("in1k", "in_a_200", "in_r_200", "objectnet_113", "objectnet_113_paper")
#: Label spaces whose indices a builder records in its source table's metadata.
RECORDED_SPACES = ("objectnet_113", "objectnet_113_paper")


def _package_dir(name: str) -> Path:
    """A top-level package's folder, found without running its ``__init__``."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise InvalidValueError(f"the `{name}` package is not installed; run `pip install {name}`")
    return Path(next(iter(spec.submodule_search_locations)))


def _timm_info(name: str) -> str:
    return (_package_dir("timm") / "data" / "_info" / name).read_text(encoding="utf-8")


@functools.cache
def _zero_shot_metadata():
    """open_clip's ``zero_shot_metadata`` (plain lists, no imports), loaded from its file."""
    loaded = sys.modules.get("open_clip.zero_shot_metadata")
    if loaded is not None:
        return loaded
    path = _package_dir("open_clip") / "zero_shot_metadata.py"
    spec = importlib.util.spec_from_file_location("_imhard_open_clip_zero_shot_metadata", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in class-index order."""
    ids = tuple(_timm_info("imagenet_synsets.txt").split())
    assert len(ids) == NUM_CLASSES, len(ids)
    return ids


@functools.cache
def wnid_to_index() -> dict[str, int]:
    return {w: i for i, w in enumerate(wnids())}


def index_of(wnid: str) -> int:
    try:
        return wnid_to_index()[wnid]
    except KeyError:
        raise UnknownNameError(f"{wnid!r} is not an ImageNet-1k wnid") from None


@functools.cache
def lemmas() -> tuple[str, ...]:
    """WordNet lemmas per class ("tench, Tinca tinca"), the form ObjectNet's mapping uses."""
    table = {}
    for line in _timm_info("imagenet_synset_to_lemma.txt").splitlines():
        if line.strip():
            wnid, lemma = line.split("\t", 1)
            table[wnid] = lemma.strip()
    return tuple(table[w] for w in wnids())


@functools.cache
def clip_names() -> tuple[str, ...]:
    """OpenAI's curated CLIP class names; two are duplicated ("missile", "sunglasses")."""
    return tuple(_zero_shot_metadata().IMAGENET_CLASSNAMES)


@functools.cache
def clip_templates() -> tuple[str, ...]:
    """OpenAI's 80 ImageNet prompt templates, as format strings taking the class name."""
    return tuple(t("{}") for t in _zero_shot_metadata().OPENAI_IMAGENET_TEMPLATES)


def english_labels(indices) -> list[str]:
    """Names for a label list, in the form the published dataset uses (OpenAI CLIP names)."""
    names = clip_names()
    return [names[int(i)] for i in indices]


@functools.cache
def imagenet_a_wnids() -> tuple[str, ...]:
    return tuple(_timm_info("imagenet_a_synsets.txt").split())


@functools.cache
def imagenet_r_wnids() -> tuple[str, ...]:
    return tuple(_timm_info("imagenet_r_synsets.txt").split())


@functools.cache
def real_labels() -> tuple[tuple[int, ...], ...]:
    """ReaL labels for the 50,000 validation images in file order; 3,163 lists are empty."""
    data = json.loads(_timm_info("imagenet_real_labels.json"))
    return tuple(tuple(int(x) for x in row) for row in data)


def label_space_indices(space: str, extra: dict[str, list[int]] | None = None) -> tuple[int, ...]:
    """The class indices a classifier may choose among for ``space``.

    ``objectnet_113`` depends on the mapping files inside the user's ObjectNet archive, so its
    indices travel in the source table's metadata and are passed in ``extra``; so do those of
    ``objectnet_113_paper`` (the authors' 113 classes, checked against that mapping at build time).
    """
    if extra and space in extra:
        return tuple(sorted(int(i) for i in extra[space]))
    if space == "in1k":
        return tuple(range(NUM_CLASSES))
    if space == "in_a_200":
        return tuple(sorted(index_of(w) for w in imagenet_a_wnids()))
    if space == "in_r_200":
        return tuple(sorted(index_of(w) for w in imagenet_r_wnids()))
    if space in RECORDED_SPACES:
        raise InvalidValueError(
            f"label space {space!r} needs the indices recorded by `imhard build --source "
            "objectnet` (source table metadata); rebuild the objectnet source with `imhard build "
            "--source objectnet --force`"
        )
    raise UnknownNameError(f"unknown label space {space!r}; known: {', '.join(LABEL_SPACES)}")


def validate_label(indices) -> list[int]:
    out = [int(i) for i in indices]
    if not out:
        raise InvalidValueError("a label list may not be empty")
    bad = [i for i in out if not 0 <= i < NUM_CLASSES]
    if bad:
        raise InvalidValueError(f"label indices must be in 0..999, got {bad}")
    return out


def parse_labels(values) -> list[int]:
    """Class indices from what people type: indices (``339``) or class names as the published
    dataset writes them (``sorrel``), each value possibly comma-separated; sorted, unique."""
    by_name = {n.lower(): i for i, n in enumerate(clip_names())}
    out = set()
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            if part.isdigit():
                out.add(int(part))
            elif part.lower() in by_name:
                out.add(by_name[part.lower()])
            else:
                from .errors import did_you_mean

                raise UnknownNameError(
                    f"unknown class name {part!r}.{did_you_mean(part.lower(), by_name)} Give a "
                    "class index 0..999 or a name as the published english_label writes it")
    return validate_label(sorted(out))
