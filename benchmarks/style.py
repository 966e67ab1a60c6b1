"""The style benchmark of issue 15: how much of a style an output takes, and how much of the content it keeps.

Three numbers per output (means over content x style pairs):
- palette ratio: sliced Wasserstein distance of the output's Lab pixels to the style's, over the
  content's own distance (1 = nothing transferred, 0 = the style's palette);
- texture ratio: the same on mean-removed 5x5 lightness patches at 3 scales;
- content kept: SSIM and Sobel-edge correlation of the blurred lightness against the content.

Peers, implemented here and never shipped: Reinhard et al. 2001 (Lab mean/std), histogram matching
(per Lab channel), and a small patch-based transfer after Elad & Milanfar 2017 (colour transfer, then
a few rounds of nearest-style-patch replacement at two scales, blended with the content).
"""

from __future__ import annotations

import cv2
import numpy as np

from imgdiff.colour import to_lab, to_rgb
from imgdiff.eval.metrics import lightness_patches, sliced_wasserstein, ssim, subsample


def lab_pixels(rgb8: np.ndarray) -> np.ndarray:
    return subsample(to_lab(rgb8.astype(np.float32) / 255).reshape(-1, 3).astype(np.float64))


def palette_ratio(out: np.ndarray, content: np.ndarray, style: np.ndarray) -> float:
    s = lab_pixels(style)
    return sliced_wasserstein(lab_pixels(out), s) / max(sliced_wasserstein(lab_pixels(content), s), 1e-9)


def texture_ratio(out: np.ndarray, content: np.ndarray, style: np.ndarray) -> float:
    ratios = []
    for scale in (1, 2, 4):
        s = lightness_patches(style, scale)
        own = sliced_wasserstein(lightness_patches(content, scale), s)
        ratios.append(sliced_wasserstein(lightness_patches(out, scale), s) / max(own, 1e-9))
    return float(np.mean(ratios))


def _blurred_lightness(rgb8: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(to_lab(rgb8.astype(np.float32) / 255)[..., 0].astype(np.float64), (0, 0), 2.0)


def content_kept(out: np.ndarray, content: np.ndarray) -> tuple[float, float]:
    """(SSIM, Sobel-edge correlation) of the blurred lightness against the content's."""
    a, b = _blurred_lightness(out), _blurred_lightness(content)
    s = ssim(a[..., None] * 2.55, b[..., None] * 2.55)

    def edges(x: np.ndarray) -> np.ndarray:
        return np.hypot(cv2.Sobel(x, cv2.CV_64F, 1, 0), cv2.Sobel(x, cv2.CV_64F, 0, 1)).ravel()

    ea, eb = edges(a), edges(b)
    return float(s), float(np.corrcoef(ea, eb)[0, 1])


def reinhard(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    c, s = to_lab(content.astype(np.float32) / 255), to_lab(style.astype(np.float32) / 255)
    out = (c - c.mean((0, 1))) / np.maximum(c.std((0, 1)), 1e-3) * s.std((0, 1)) + s.mean((0, 1))
    return np.round(to_rgb(out) * 255).astype(np.uint8)


def histogram_match(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Each Lab channel of the content takes the style's values at the same rank."""
    c, s = to_lab(content.astype(np.float32) / 255), to_lab(style.astype(np.float32) / 255)
    out = np.empty_like(c)
    for k in range(3):
        src = c[..., k].ravel()
        ranks = np.empty(src.size)
        ranks[np.argsort(src, kind="stable")] = (np.arange(src.size) + 0.5) / src.size
        ref = np.sort(s[..., k].ravel())
        out[..., k] = ref[np.minimum((ranks * ref.size).astype(int), ref.size - 1)].reshape(c.shape[:2])
    return np.round(to_rgb(out) * 255).astype(np.uint8)


PATCH, STRIDE = 8, 4


def patch_transfer(content: np.ndarray, style: np.ndarray, rounds: int = 3, seed: int = 0) -> np.ndarray:
    """Elad & Milanfar-style: colour transfer, then rounds of replacing every 8x8 patch (stride 4) by
    its nearest style patch, averaged where patches overlap and blended with the content (weight
    0.3), coarse scale (1/2) first."""
    rng = np.random.default_rng(seed)
    x = histogram_match(content, style).astype(np.float64) / 255
    target = content.astype(np.float64) / 255
    for scale in (2, 1):
        size = (content.shape[1] // scale, content.shape[0] // scale)
        sty = cv2.resize(style, (style.shape[1] // scale, style.shape[0] // scale), interpolation=cv2.INTER_AREA)
        lib = np.lib.stride_tricks.sliding_window_view(sty.astype(np.float64) / 255, (PATCH, PATCH, 3))[::2, ::2, 0]
        lib = lib.reshape(-1, PATCH * PATCH * 3)
        lib = lib[rng.choice(len(lib), min(len(lib), 4000), replace=False)]
        lib_sq = (lib**2).sum(1)
        cur = cv2.resize(x, size, interpolation=cv2.INTER_AREA)
        tgt = cv2.resize(target, size, interpolation=cv2.INTER_AREA)
        for _ in range(rounds):
            grid = np.lib.stride_tricks.sliding_window_view(cur, (PATCH, PATCH, 3))[::STRIDE, ::STRIDE, 0]
            ny, nx = grid.shape[:2]
            best = np.argmin(lib_sq[None, :] - 2 * grid.reshape(ny * nx, -1) @ lib.T, axis=1)
            chosen = lib[best].reshape(ny, nx, PATCH, PATCH, 3)
            acc, cnt = np.zeros_like(cur), np.zeros(cur.shape[:2] + (1,))
            for dy in range(PATCH):  # overlap-add, one pixel offset at a time (vectorised over patches)
                for dx in range(PATCH):
                    acc[dy : dy + STRIDE * ny : STRIDE, dx : dx + STRIDE * nx : STRIDE] += chosen[:, :, dy, dx]
                    cnt[dy : dy + STRIDE * ny : STRIDE, dx : dx + STRIDE * nx : STRIDE] += 1
            synth = np.where(cnt > 0, acc / np.maximum(cnt, 1), cur)
            cur = 0.7 * synth + 0.3 * tgt
        x = cv2.resize(cur, (content.shape[1], content.shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
