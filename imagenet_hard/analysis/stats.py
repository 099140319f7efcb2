"""The paper's zoom statistics (sections 4.1–4.4, appendix B.1/B.3) over correctness masks.

Every function takes an (N, 324) bool matrix in transform-index order and returns fractions of
all N images (numbers in [0, 1]). Definitions, with the paper's table or figure:

* **1-crop, paper** (Table 1a): transform S=256, centre anchor (1, 1), which is how the authors'
  notebooks compute "standard top-1" (row ``LOC:1_1_Size:256`` of their correctness tables).
  **1-crop, standard**: resize 256 then centre crop 224, judged separately by exhaustive runs
  (``one_crop_correct``); the two differ when a side is not a multiple of 3 plus the right rest.
* **maximum possible accuracy** (Table 1c): images with at least one correct transform.
* **greedy cover** (Table 2, Table 1b with k = 36): :mod:`.cover`.
* **zoom groups** (Table 3 / A1): a group *solves* an image when one of its transforms is correct;
  an image is solved *only* by a group when that group solves it and neither other group does.
  Computed over all 324 transforms, and over the cover's transforms only (appendix B.1 says the
  paper used the transforms of the minimum cover).
* **per anchor** (Fig. 5 / A4–A9): maximum possible accuracy with the 36 scales of one anchor.
* **per scale** (Fig. 4): maximum possible accuracy with the 9 anchors of one scale; also the
  accuracy of the centre anchor alone at each scale (close to appendix B.6's 1-crop per scale).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..zoom import GRID, GROUPS, SCALES, STANDARD_CROP_INDEX, group_mask
from .cover import Cover, greedy_cover
from .masks import RunMasks

#: Cover prefixes the report shows (1 crop, one scale's worth, as many as there are scales).
COVER_PREFIXES = (1, 9, 36)
ALL = "all"


def stats_definitions() -> dict[str, str]:
    """One line per statistic, for the report and ``analysis.json``."""
    return {
        "1-crop": "resize the shorter side to 256 (bicubic), centre crop 224; judged by "
                  "exhaustive runs besides the 324 transforms",
        "1-crop (paper)": "transform S=256, centre anchor (1, 1): how the authors' notebooks "
                          "compute Table 1a; equal to the 1-crop only for some image sizes",
        "max possible": "at least one of the 324 transforms is correct (Table 1c)",
        "greedy cover": "repeatedly take the transform that solves the most unsolved images, "
                        "ties to the lowest transform index, until every solvable image is "
                        "solved (Table 2); cover top-k: images solved by its first k (Table 1b)",
        "zoom groups": "zoom-out S < 224, zoom-224 S = 224, zoom-in S > 224; a group solves an "
                       "image when one of its transforms is correct; only: that group solves it "
                       "and neither other group does (Table 3 / A1)",
        "per anchor": "maximum possible accuracy with the 36 scales of one anchor (Fig. 5)",
        "per scale": "maximum possible accuracy with the 9 anchors of one scale (Fig. 4), and "
                     "the accuracy of its centre anchor alone",
        "accuracy": "fraction of all images of the subset, correct when the top-1 within the "
                    "image's label space is one of its labels",
    }


def max_accuracy(correct: np.ndarray) -> float:
    return float(correct.any(axis=1).mean()) if len(correct) else 0.0


def paper_one_crop(correct: np.ndarray) -> float:
    return float(correct[:, STANDARD_CROP_INDEX].mean()) if len(correct) else 0.0


def group_solves(correct: np.ndarray, within: np.ndarray | None = None) -> dict[str, dict]:
    """Per zoom group: ``solves`` and ``only`` (module docstring), optionally restricted to the
    transforms where ``within`` (bool (324,)) holds."""
    n = len(correct)
    allowed = np.ones(correct.shape[1], dtype=bool) if within is None else within
    solved = {g: correct[:, group_mask(g) & allowed].any(axis=1) for g in GROUPS}
    out = {}
    for g in GROUPS:
        others = np.zeros(n, dtype=bool)
        for h in GROUPS:
            if h != g:
                others |= solved[h]
        out[g] = {"solves": float(solved[g].mean()) if n else 0.0,
                  "only": float((solved[g] & ~others).mean()) if n else 0.0}
    return out


def per_anchor(correct: np.ndarray) -> list[list[float]]:
    """3×3 (row i, column j) maximum possible accuracy over the 36 scales of each anchor."""
    if not len(correct):
        return [[0.0] * GRID for _ in range(GRID)]
    grid = correct.reshape(len(correct), len(SCALES), GRID, GRID).any(axis=1).mean(axis=0)
    return grid.tolist()


def per_scale(correct: np.ndarray) -> tuple[list[float], list[float]]:
    """(maximum possible accuracy with the 9 anchors, accuracy of the centre anchor) per scale."""
    if not len(correct):
        zeros = [0.0] * len(SCALES)
        return zeros, list(zeros)
    by_scale = correct.reshape(len(correct), len(SCALES), GRID * GRID)
    centre = (GRID * GRID) // 2
    return (by_scale.any(axis=2).mean(axis=0).tolist(),
            by_scale[:, :, centre].mean(axis=0).tolist())


@dataclass(frozen=True)
class SubsetAnalysis:
    """Every statistic of one set of images (one origin, or ``all``)."""

    name: str
    images: int
    one_crop_paper: float
    one_crop_standard: float | None
    max_accuracy: float
    cover: list[int]
    cover_gains: list[int]
    cover_accuracy: dict[str, float]
    groups: dict[str, dict]
    groups_within_cover: dict[str, dict]
    anchors: list[list[float]]
    scale_max: list[float]
    scale_centre: list[float]
    scales: list[int] = field(default_factory=lambda: list(SCALES))

    @property
    def cover_size(self) -> int:
        return len(self.cover)

    def to_dict(self) -> dict:
        return {**asdict(self), "cover_size": self.cover_size}


def analyze_subset(name: str, correct: np.ndarray, one_crop: np.ndarray | None) -> SubsetAnalysis:
    cover: Cover = greedy_cover(correct)
    in_cover = np.zeros(correct.shape[1], dtype=bool)
    in_cover[list(cover.transforms)] = True
    scale_max, scale_centre = per_scale(correct)
    prefixes = {str(k): cover.accuracy_at(k) for k in COVER_PREFIXES}
    prefixes["all"] = cover.accuracy_at(cover.size)
    return SubsetAnalysis(
        name=name, images=len(correct), one_crop_paper=paper_one_crop(correct),
        one_crop_standard=(float(one_crop.mean()) if one_crop is not None and len(one_crop)
                           else None),
        max_accuracy=max_accuracy(correct), cover=list(cover.transforms),
        cover_gains=list(cover.gains), cover_accuracy=prefixes,
        groups=group_solves(correct), groups_within_cover=group_solves(correct, in_cover),
        anchors=per_anchor(correct), scale_max=scale_max, scale_centre=scale_centre,
    )


def analyze(masks: RunMasks) -> list[SubsetAnalysis]:
    """One analysis per origin; with several origins, all images first (named ``all``)."""
    origins = sorted(set(masks.origins.tolist()))
    if len(origins) <= 1:
        return [analyze_subset(origins[0] if origins else ALL, masks.correct, masks.one_crop)]
    out = [analyze_subset(ALL, masks.correct, masks.one_crop)]
    for origin in origins:
        keep = masks.origins == origin
        one = None if masks.one_crop is None else masks.one_crop[keep]
        out.append(analyze_subset(origin, masks.correct[keep], one))
    return out
