"""Which labels and which label space judge a source-table row, under a named ObjectNet rule.

ObjectNet's 113 classes that overlap ImageNet-1k map to 125 ImageNet classes: nine of them to
several ("Chair" → barber chair, folding chair, rocking chair). Two published protocols differ:

- ``paper`` — how the ImageNet-Hard authors mined: ObjectNet as 113 wnid folders, one ImageNet
  class per ObjectNet class, used as the label and, all 113 together, as the mask
  (``objectnet_wnids`` in ``src/memo/imagenet-exps/test_calls/utils/third_party.py`` of
  taesiri/ZoomIsAllYouNeed, line 2225; the mask from the folders in ``src/evaluators/eval-CLIP.py``
  lines 1191-1192 and 1204). Row field ``label_paper``, label space ``objectnet_113_paper``.
- ``all-mapped`` — ObjectNet's own evaluation (``objectnet_to_imagenet_1k.json``): every mapped
  ImageNet class counts as correct; the mask is their union. Row field ``label``, label space
  ``objectnet_113``.

Rows of every other source have one label set, used under both rules. Torch-free: mining and
scoring call :func:`objectnet_rule` per row, then ``labels.label_space_indices(space, extra)`` with
the table's recorded label spaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InvalidValueError, unknown_name
from .labels import validate_label
from .registry import normalize_name

#: The rules by name, each with what it does and where it comes from.
OBJECTNET_RULES = {
    "paper": "the authors' single ImageNet class per ObjectNet class as label, their 113 classes "
             "as mask (taesiri/ZoomIsAllYouNeed third_party.py objectnet_wnids, eval-CLIP.py)",
    "all-mapped": "every ImageNet class the ObjectNet class maps to as label, their union as mask "
                  "(ObjectNet's objectnet_to_imagenet_1k.json, its official evaluation)",
}

#: Label space of a row under ``all-mapped`` → its label space under ``paper``.
PAPER_SPACES = {"objectnet_113": "objectnet_113_paper"}


@dataclass(frozen=True)
class JudgedLabels:
    """What a crop's top-1 is checked against: the label set and the label space's name."""

    label: tuple[int, ...]
    label_space: str


def check_objectnet_rule(name: str) -> str:
    """The rule's canonical name (``all_mapped`` is accepted), or an error with close matches."""
    key = normalize_name(str(name))
    if key in OBJECTNET_RULES:
        return key
    raise unknown_name("ObjectNet label rule", name, OBJECTNET_RULES, key=key, n=2)


def _field(row, name: str):
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


def objectnet_rule(row, rule: str) -> JudgedLabels:
    """The label set and label space of ``row`` (a source-table row as a dict, or a ``SourceRow``)
    under ``rule`` (``paper`` or ``all-mapped``)."""
    rule = check_objectnet_rule(rule)
    space = _field(row, "label_space")
    label = tuple(validate_label(_field(row, "label")))
    paper_space = PAPER_SPACES.get(space)
    if rule == "all-mapped" or paper_space is None:
        return JudgedLabels(label, space)
    paper = _field(row, "label_paper")
    if not paper:
        raise InvalidValueError(
            f"row {_field(row, 'id')!r} has no label_paper (the authors' single ObjectNet class): "
            "its source table was built by an older imagenet-hard; rebuild it with `imhard build "
            "--source objectnet --force`, or use the all-mapped rule")
    paper = tuple(validate_label(paper))
    if not set(paper) <= set(label):
        raise InvalidValueError(f"row {_field(row, 'id')!r}: label_paper {list(paper)} is not "
                                f"among its mapped labels {list(label)}; rebuild the source")
    return JudgedLabels(paper, paper_space)


__all__ = ["JudgedLabels", "OBJECTNET_RULES", "PAPER_SPACES", "check_objectnet_rule",
           "objectnet_rule"]
