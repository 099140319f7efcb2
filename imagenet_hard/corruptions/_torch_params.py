"""Severity parameters the torch backend reads: DESIGN §7, plus snow, spatter and elastic from the
reference (``imagecorruptions-imaug``), entry ``s - 1`` for severity ``s``.

Kept apart from the package's public parameter table so the torch backend stands on its own;
``tests/test_corruptions_torch.py`` checks every entry against the installed reference's source.
"""

from __future__ import annotations

import numpy as np

NAMES: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)

PARAMS: dict[str, tuple] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),            # σ on [0, 1] pixels
    "shot_noise": (60, 25, 12, 5, 3),                            # Poisson rate λ
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),             # salt-and-pepper fraction
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),               # σ of the multiplicative noise
    "gaussian_blur": (1, 2, 3, 4, 6),                            # σ in pixels
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),  # σ, δ, iters
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),  # radius, alias σ
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),      # radius, σ
    # numpy.arange(start, stop, step): float steps give 12 factors at severity 1, not 11
    "zoom_blur": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02),
                  (1, 1.31, 0.03)),
    # mean, σ, zoom, threshold, blur radius, blur σ, image weight
    "snow": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
             (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
             (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
    "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),  # image, frost weight
    "fog": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),       # strength, decay
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),                     # added to HSV value
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),                      # factor about the channel mean
    # displacement strength α (field σ = 1% of each side, range ±0.5% of the height)
    "elastic_transform": (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),                      # downscale factor
    "jpeg_compression": (25, 18, 15, 10, 7),                     # quality
    # mean, σ, blur σ, threshold, strength or mud blur σ, branch (0 water, 1 mud)
    "spatter": ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0),
                (0.65, 0.3, 2, 0.68, 0.5, 0), (0.65, 0.3, 1, 0.65, 1.5, 1),
                (0.67, 0.4, 1, 0.65, 1.5, 1)),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),  # S factor, S offset
}


def param(name: str, severity: int):
    return PARAMS[name][severity - 1]


def zoom_factors(severity: int) -> np.ndarray:
    start, stop, step = param("zoom_blur", severity)
    return np.arange(start, stop, step)
