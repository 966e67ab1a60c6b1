"""Blind estimate of additive white Gaussian noise (sigma on the 0..255 scale).

PCA of small patches (Chen, Zhu & Heng, ICCV 2015): the smallest eigenvalues of the patch
covariance belong to noise alone; the noise variance is the largest tail of eigenvalues whose
mean equals its median. Patches touching the clipping limits are skipped, since clipping shrinks
the noise there.
"""

from __future__ import annotations

import numpy as np

PATCH = 7
MAX_PATCHES = 200_000


def estimate_sigma(pixels: np.ndarray, seed: int = 0) -> float:
    """pixels: float (H, W, C) in [0, 1]. Returns sigma in 0..255 units."""
    img = pixels.astype(np.float64) * 255
    h, w, c = img.shape
    if h < PATCH * 2 or w < PATCH * 2:
        return 0.0
    rng = np.random.default_rng(seed)
    n_pos = (h - PATCH + 1) * (w - PATCH + 1)
    count = min(MAX_PATCHES // c + 1, n_pos)
    idx = rng.choice(n_pos, size=count, replace=False) if count < n_pos else np.arange(n_pos)
    ys, xs = np.divmod(idx, w - PATCH + 1)
    off = np.arange(PATCH)
    rows = (ys[:, None] + off[None, :])[:, :, None]
    cols = (xs[:, None] + off[None, :])[:, None, :]
    patches = np.concatenate([img[rows, cols, ch].reshape(len(idx), -1) for ch in range(c)])
    means = patches.mean(1)
    sigma = _pca_sigma(patches)
    for _ in range(2):  # keep patches whose mean sits clear of the clipping limits at this sigma
        margin = min(2.5 * sigma, 100.0)
        keep = (means > margin) & (means < 255 - margin)
        if keep.sum() < 1000:
            break
        sigma = _pca_sigma(patches[keep])
    return sigma


def _pca_sigma(x: np.ndarray) -> float:
    x = x - x.mean(0)
    eig = np.sort(np.linalg.eigvalsh(x.T @ x / len(x)))  # ascending
    for k in range(len(eig), 0, -1):
        tail = eig[:k]
        tau = tail.mean()
        if tau <= np.median(tail):
            break
    return float(np.sqrt(max(tau - 1 / 12, 0.0)))  # minus the 8-bit quantisation noise
