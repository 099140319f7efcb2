"""The 19 ImageNet-C corruptions and their severity parameters, as data.

Each ``SEVERITY_PARAMS[name]`` holds five entries, entry ``s - 1`` for severity ``s``, in the form
the reference implementation (``imagecorruptions``) uses them, so a second implementation can
read the same numbers. ``tests/corruptions/test_corruptions.py`` checks them against the installed reference.
"""

from __future__ import annotations

#: In ImageNet-C's order: 15 benchmark corruptions, then 4 held out.
NAMES: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)
BENCHMARK: tuple[str, ...] = NAMES[:15]
HELD_OUT: tuple[str, ...] = NAMES[15:]
#: The six types the paper kept for ImageNet-Hard.
PAPER_SIX: tuple[str, ...] = ("impulse_noise", "frost", "fog", "snow", "brightness", "zoom_blur")
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

#: Corruptions whose output does not depend on the seed.
DETERMINISTIC: frozenset[str] = frozenset({
    "defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression",
    "gaussian_blur", "saturate",
})

SEVERITY_PARAMS: dict[str, tuple] = {
    # noise: σ of N(0, σ²) added to [0, 1] pixels; Poisson rate λ; salt-and-pepper fraction
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
    # blur: (disk radius, anti-alias σ); (σ, max shift δ, shuffle iterations); (radius, σ) with
    # the angle drawn from U(-45°, 45°); zoom factors as numpy.arange(start, stop, step)
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    "zoom_blur": ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02),
                  (1, 1.31, 0.03)),
    "gaussian_blur": (1, 2, 3, 4, 6),
    # weather: snow (mean, σ, zoom, threshold, blur radius, blur σ, image weight); frost
    # (image weight, frost weight); fog (strength, wibble decay of the plasma fractal)
    "snow": ((0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
             (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
             (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)),
    "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    "fog": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
    "spatter": ((0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0),
                (0.65, 0.3, 2, 0.68, 0.5, 0), (0.65, 0.3, 1, 0.65, 1.5, 1),
                (0.67, 0.4, 1, 0.65, 1.5, 1)),
    # digital: value shift in HSV; contrast factor; (saturation factor, offset); displacement
    # strength α of the elastic field (its σ is 1% and its range 0.5% of the image height);
    # pixelate scale; JPEG quality
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
    "elastic_transform": (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12),
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    "jpeg_compression": (25, 18, 15, 10, 7),
}


def zoom_factors(severity: int):
    """The zoom factors ``zoom_blur`` averages over at ``severity`` (a numpy array)."""
    import numpy as np

    return np.arange(*SEVERITY_PARAMS["zoom_blur"][severity - 1])


def param(name: str, severity: int):
    """The parameters of corruption ``name`` at ``severity`` (1..5)."""
    return SEVERITY_PARAMS[name][severity - 1]
