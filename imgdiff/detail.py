"""A gain on the finest detail band of a restored image.

A one-step denoiser returns the posterior mean, which shrinks every fine detail whose amplitude it
cannot tell from the noise: camera-noise outputs keep about half the high-frequency energy of the
clean photo (docs/BENCHMARKS.md, texture ratios). Scaling the band above a 1-px Gaussian back up
restores much of it at almost no PSNR cost, where sampling texture afresh (--steps) costs far more
for less (docs/TRAINING.md, "Detail gain for camera noise"). How much is lost grows with the noise, so
camera noise's default gain follows the std of what the denoiser removed (camera_gain)."""

from __future__ import annotations

import math

import numpy as np

from .defaults import DETAIL_RANGE, REAL_DETAIL_FIT, REAL_DETAIL_MAX, REAL_DETAIL_RAMP
from .io import ImageData

DETAIL_SIGMA = 1.0  # px: the band is the image minus its Gaussian blur at this sigma


def restore_detail(img: ImageData, gain: float) -> ImageData:
    """img + (gain - 1) x (img - blur(img)), clipped to [0, 1]; gain 1 returns img itself."""
    if not (math.isfinite(gain) and DETAIL_RANGE[0] <= gain <= DETAIL_RANGE[1]):
        raise ValueError(f"detail {gain}: expected {DETAIL_RANGE[0]:g}..{DETAIL_RANGE[1]:g}")
    if gain == 1:
        return img
    import cv2

    px = img.pixels
    blur = cv2.GaussianBlur(px, (0, 0), DETAIL_SIGMA, borderType=cv2.BORDER_REFLECT).reshape(px.shape)
    return img.with_pixels(np.clip(px + np.float32(gain - 1) * (px - blur), 0, 1, dtype=np.float32))


def removed_std(before: np.ndarray, after: np.ndarray, rows: int = 256) -> float:
    """Std of before - after on the 0..255 scale, a band of rows at a time (a 9.4 MP image would
    otherwise need a float64 copy of itself)."""
    total = squares = 0.0
    for y in range(0, before.shape[0], rows):
        d = before[y : y + rows].astype(np.float64) - after[y : y + rows]
        total += float(d.sum())
        squares += float(np.square(d).sum())
    n = max(before.size, 1)
    return 255 * math.sqrt(max(squares / n - (total / n) ** 2, 0.0))


def camera_gain(removed: float) -> float:
    """The camera-noise default gain for a denoiser that removed `removed` (std, 0..255): 1 on a clean
    image, ~1.45 at ISO 800, ~1.9 at ISO 12800 of the benchmark camera (imgdiff.defaults)."""
    if math.isnan(removed):
        return 1.0
    a, p = REAL_DETAIL_FIT
    lo, hi = REAL_DETAIL_RAMP
    s = max(removed, 0.0)
    fade = min(max((s - lo) / (hi - lo), 0.0), 1.0)
    return round(min(1 + fade * a * s**p, REAL_DETAIL_MAX), 3)
