"""A gain on the finest detail band of a restored image.

A one-step denoiser returns the posterior mean, which shrinks every fine detail whose amplitude it
cannot tell from the noise: camera-noise outputs keep about half the high-frequency energy of the
clean photo (docs/BENCHMARKS.md, texture ratios). Scaling the band above a 1-px Gaussian back up
restores much of it at almost no PSNR cost, where sampling texture afresh (--steps) costs far more
for less (docs/TRAINING.md, "Detail gain for camera noise")."""

from __future__ import annotations

import math

import numpy as np

from .defaults import DETAIL_RANGE
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
