"""The generate benchmark of issue 15: are the textures seamless, natural-looking and sharp?

Three numbers per set of samples:
- seam ratio: mean absolute step across the wrap-around seams (last column to first, last row to
  first) over the mean step between neighbouring pixels inside; 1 = seamless when tiled, a plain
  photo crop is well above 1;
- texture distance: sliced Wasserstein distance of mean-removed 5x5 lightness patches at 3 scales
  (the style benchmark's texture statistic) to a reference set: held-out photographic textures for
  plain `generate`, the style image for `generate --style`;
- sharpness: mean squared Laplacian of the lightness over the reference's (1 = as much fine detail,
  below 1 = smoother; the "blurry smears" of the issue read low here).

Controls put the numbers on a scale: another set of crops of the same reference images (what a real
texture scores) and the same crops Gaussian-blurred (sigma 2 px: what a smear scores).
"""

from __future__ import annotations

import cv2
import numpy as np

from imgdiff.colour import to_lab


def seam_ratio(a: np.ndarray) -> float:
    x = a.astype(np.float64)
    inner = 0.5 * (np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=0)).mean())
    seam = 0.5 * (np.abs(x[:, 0] - x[:, -1]).mean() + np.abs(x[0] - x[-1]).mean())
    return float(seam / max(inner, 1e-9))


def _laplacian_energy(a: np.ndarray) -> float:
    lum = to_lab(a.astype(np.float32) / 255)[..., 0].astype(np.float64)
    return float((cv2.Laplacian(lum, cv2.CV_64F) ** 2).mean())


def sharpness(samples: list[np.ndarray], reference: list[np.ndarray]) -> float:
    return float(np.mean([_laplacian_energy(a) for a in samples]) / np.mean([_laplacian_energy(a) for a in reference]))


def random_crops(images: list[np.ndarray], side: int, count: int, seed: int) -> list[np.ndarray]:
    """`count` side x side crops, images taken in turn, positions from the seed."""
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        a = images[i % len(images)]
        h, w = a.shape[:2]
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crops.append(np.ascontiguousarray(a[y : y + side, x : x + side]))
    return crops


def blurred(images: list[np.ndarray], sigma: float = 2.0) -> list[np.ndarray]:
    return [cv2.GaussianBlur(a, (0, 0), sigma) for a in images]
