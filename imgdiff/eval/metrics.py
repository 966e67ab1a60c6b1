"""PSNR and SSIM as the benchmark protocol defines them (0..255 scale, float64), and the patch
statistics that say how far a texture is from another (the style and generate benchmarks, and the
generate trainer's checkpoint choice)."""

from __future__ import annotations

import cv2
import numpy as np

from ..colour import to_lab


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma on the 16..235 scale, as MATLAB's rgb2ycbcr (SR protocol)."""
    x = img.astype(np.float64)
    return 16 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255


def psnr_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> float:
    """Y-channel PSNR with `shave` pixels cut from each border."""
    a, b = rgb_to_y(sr), rgb_to_y(hr)
    if shave:
        a, b = a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave]
    return psnr(a, b)


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Wang et al. 2004 SSIM, 11x11 Gaussian window (sigma 1.5), averaged over channels."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    vals = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch], b[..., ch]
        blur = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5)[5:-5, 5:-5]  # noqa: E731
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
        vals.append(m.mean())
    return float(np.mean(vals))


SWD_DIRECTIONS = 64
SWD_QUANTILES = 256
TEXTURE_SCALES = (1, 2, 4)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """Sliced 1-Wasserstein distance between two point sets (N, D) and (M, D)."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((a.shape[1], SWD_DIRECTIONS))
    d /= np.linalg.norm(d, axis=0, keepdims=True)
    q = np.linspace(0, 1, SWD_QUANTILES)
    return float(np.mean(np.abs(np.quantile(a @ d, q, axis=0) - np.quantile(b @ d, q, axis=0))))


def subsample(x: np.ndarray, n: int = 40_000, seed: int = 0) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[np.random.default_rng(seed).choice(len(x), n, replace=False)]


def lightness_patches(rgb8: np.ndarray, scale: int) -> np.ndarray:
    """Mean-removed 5x5 lightness patches (stride 2) of the image downscaled by `scale`."""
    lum = to_lab(rgb8.astype(np.float32) / 255)[..., 0]
    if scale > 1:
        lum = cv2.resize(lum, (lum.shape[1] // scale, lum.shape[0] // scale), interpolation=cv2.INTER_AREA)
    win = np.lib.stride_tricks.sliding_window_view(lum, (5, 5))[::2, ::2].reshape(-1, 25).astype(np.float64)
    return subsample(win - win.mean(1, keepdims=True))


def texture_distance(samples: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Mean over 3 scales of the sliced Wasserstein distance between the two sets' pooled patches:
    about 0.5 between crops of the same photographic textures, above 1 for a smear of them."""

    def pooled(images: list[np.ndarray], scale: int) -> np.ndarray:
        return np.concatenate([lightness_patches(a, scale) for a in images])

    return float(np.mean([sliced_wasserstein(pooled(samples, s), pooled(reference, s)) for s in TEXTURE_SCALES]))
