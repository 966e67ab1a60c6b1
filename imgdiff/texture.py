"""Texture statistics of a style, and moving an image's fine structure to them (issue 15).

SDEdit keeps the content's layout only at noise levels too low to repaint its fine structure, so the
style's grain and strokes must be put there another way. Here a texture is the distribution of its
mean-removed 5x5 lightness patches at three scales (full, 1/2, 1/4), summarised by the quantiles of
their projections on fixed random directions (the sliced-Wasserstein description of Rabin et al.,
"Wasserstein barycenter and its application to texture mixing", 2011; Heitz et al., "A sliced
Wasserstein loss for neural texture synthesis", CVPR 2021). An image is moved towards it by sliced
optimal transport: each iteration projects the image's patches on a subset of the directions,
replaces each projection by the style's value of the same rank, and puts the patches back (overlaps
averaged), while the blurred lightness is pulled back to where it started, so the layout stays and
only the texture changes. A few numbers per direction, so a saved style carries its texture.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np

from .colour import to_lab, to_rgb

SCALES = (1, 2, 4)  # the patch grid at full, half and quarter resolution
PATCH = 5
DIRECTIONS = 64  # fixed random unit vectors in patch space (seeded: the same for every style)
QUANTILES = 128
PER_ITERATION = 32  # directions used by one iteration (a random subset)
ANCHOR_SIGMA = 2.0  # the blur whose output is held to the start: what "layout" means here
MAX_SIDE = 512  # a larger style is described by its centre crop of this size (the texture's scale kept)
AMOUNT = 1.5  # the products' step (stylize at and above its default strength, generate --style)
ITERATIONS = 10


def directions() -> np.ndarray:
    """(DIRECTIONS, 25) unit vectors, mean-free (patches are mean-removed, so the mean is no direction)."""
    d = np.random.default_rng(20211).standard_normal((DIRECTIONS, PATCH * PATCH))
    d -= d.mean(1, keepdims=True)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """Lab of float RGB in [0, 1]; a grey image (one channel) as RGB with R = G = B."""
    return to_lab(np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb)


def lightness(rgb: np.ndarray) -> np.ndarray:
    """(H, W) Lab lightness, 0..100, of float RGB in [0, 1] (grey: one channel)."""
    return _lab(rgb)[..., 0]


def _downscale(lum: np.ndarray, s: int) -> np.ndarray:
    if s == 1:
        return lum
    h, w = lum.shape[0] // s, lum.shape[1] // s
    return cv2.resize(lum[: h * s, : w * s], (w, h), interpolation=cv2.INTER_AREA)


def _patches(lum: np.ndarray, stride: int = 1, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(N, 25) mean-removed patches on a grid of `stride` starting at `offset`."""
    v = np.lib.stride_tricks.sliding_window_view(lum, (PATCH, PATCH))[offset[0] :: stride, offset[1] :: stride]
    p = v.reshape(-1, PATCH * PATCH).astype(np.float32)
    return p - p.mean(1, keepdims=True)


def texture_stats(rgb: np.ndarray) -> np.ndarray:
    """(len(SCALES), DIRECTIONS, QUANTILES) sorted-projection quantiles of a style image's patches."""
    lum = lightness(rgb)
    h, w = lum.shape
    if max(h, w) > MAX_SIDE:
        y, x = max(0, (h - MAX_SIDE) // 2), max(0, (w - MAX_SIDE) // 2)
        lum = lum[y : y + MAX_SIDE, x : x + MAX_SIDE]
    d = directions()
    q = np.linspace(0, 1, QUANTILES)
    out = np.zeros((len(SCALES), DIRECTIONS, QUANTILES), np.float32)
    for i, s in enumerate(SCALES):
        small = _downscale(lum, s)
        if min(small.shape) < PATCH:
            small = np.pad(small, ((0, max(0, PATCH - small.shape[0])), (0, max(0, PATCH - small.shape[1]))), "reflect")
        out[i] = np.quantile(_patches(small) @ d.T, q, axis=0).T
    return out


def _matched(proj: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Each column of proj (N, K) replaced by the style's value at the same rank (quantiles (K, Q))."""
    n, k = proj.shape
    ranks = np.empty_like(proj)
    order = np.argsort(proj, axis=0)
    ranks[order, np.arange(k)[None, :]] = ((np.arange(n) + 0.5) / n * (quantiles.shape[1] - 1))[:, None]
    lo = np.floor(ranks).astype(np.int64)
    hi = np.minimum(lo + 1, quantiles.shape[1] - 1)
    t = ranks - lo
    cols = np.arange(k)[None, :]
    return quantiles[cols, lo] * (1 - t) + quantiles[cols, hi] * t


def _put_back(delta: np.ndarray, shape: tuple[int, int], grid: tuple[int, int], stride: int, offset) -> np.ndarray:
    """Overlap-average (N, 25) patch displacements on their grid into an image of `shape`."""
    acc = np.zeros(shape, np.float32)
    cnt = np.zeros(shape, np.float32)
    ny, nx = grid
    d = delta.reshape(ny, nx, PATCH, PATCH)
    for dy in range(PATCH):
        for dx in range(PATCH):
            ys = slice(offset[0] + dy, offset[0] + dy + stride * ny, stride)
            xs = slice(offset[1] + dx, offset[1] + dx + stride * nx, stride)
            acc[ys, xs] += d[:, :, dy, dx]
            cnt[ys, xs] += 1
    return acc / np.maximum(cnt, 1)


def _blur(lum: np.ndarray, wrap: bool) -> np.ndarray:
    if not wrap:
        return cv2.GaussianBlur(lum, (0, 0), ANCHOR_SIGMA)
    r = int(4 * ANCHOR_SIGMA)
    return cv2.GaussianBlur(np.pad(lum, r, mode="wrap"), (0, 0), ANCHOR_SIGMA)[r:-r, r:-r]


def _upscale(small: np.ndarray, s: int, shape: tuple[int, int], wrap: bool) -> np.ndarray:
    """Bilinear upsampling by s to `shape`; with wrap the image's far edge is its left neighbour, so a
    coarse-scale step interpolates across the seam instead of holding the edge value (which left
    --tileable --style with seams twice as sharp as its inside)."""
    if s == 1:
        return small
    if wrap:
        big = cv2.resize(np.pad(small, 1, mode="wrap"), ((small.shape[1] + 2) * s, (small.shape[0] + 2) * s))
        big = big[s:-s, s:-s]
    else:
        big = cv2.resize(small, (small.shape[1] * s, small.shape[0] * s), interpolation=cv2.INTER_LINEAR)
    return np.pad(big, ((0, shape[0] - big.shape[0]), (0, shape[1] - big.shape[1])), "edge")


def match_texture(
    rgb: np.ndarray,
    stats: np.ndarray,
    amount: float = AMOUNT,
    iterations: int = ITERATIONS,
    hold: float = 1.0,
    seed: int = 0,
    wrap: bool = False,
) -> np.ndarray:
    """Move the lightness texture of float RGB (H, W, 3) in [0, 1] towards `stats` (texture_stats);
    amount scales how far each iteration moves, hold how much of the blurred lightness's drift each
    iteration undoes. Colours (a, b) are left as they are. wrap: the image tiles (generate
    --tileable), so patches and blur run across its edges and the seams stay invisible."""
    if amount <= 0 or iterations <= 0:
        return rgb
    grey = rgb.shape[2] == 1
    lab = _lab(rgb)
    lum = lab[..., 0].astype(np.float32)
    anchor = _blur(lum, wrap)
    d = directions().astype(np.float32)
    rng = np.random.default_rng(seed)
    h, w = lum.shape
    margin = PATCH - 1 if wrap else 0
    for _ in range(iterations):
        step = np.zeros_like(lum)
        for i, s in enumerate(SCALES):
            small = _downscale(lum, s)
            if min(small.shape) < PATCH + 2:
                continue
            if wrap:
                small = np.pad(small, margin, mode="wrap")
            stride = max(1, 4 // s)  # about the same number of patches at every scale
            off = (int(rng.integers(stride)), int(rng.integers(stride)))
            p = _patches(small, stride, off)
            ny = (small.shape[0] - PATCH - off[0]) // stride + 1
            nx = (small.shape[1] - PATCH - off[1]) // stride + 1
            pick = rng.choice(DIRECTIONS, PER_ITERATION, replace=False)
            dk = d[pick]
            proj = p @ dk.T
            delta = (_matched(proj, stats[i, pick]) - proj) @ dk * (PATCH * PATCH / PER_ITERATION)
            moved = _put_back(delta, small.shape, (ny, nx), stride, off)
            if margin:
                moved = moved[margin:-margin, margin:-margin]
            step += _upscale(moved, s, (h, w), wrap)
        lum = lum + amount * step / len(SCALES)
        lum += hold * _blur(anchor - lum, wrap)
    lab[..., 0] = np.clip(lum, 0, 100)
    out = to_rgb(lab)
    return out[..., :1] if grey else out


def encode_stats(stats: np.ndarray) -> dict:
    """JSON-friendly: a style checkpoint keeps its texture in its config (float16, ~66 KB of text)."""
    return {"shape": list(stats.shape), "float16": base64.b64encode(stats.astype("<f2").tobytes()).decode("ascii")}


def decode_stats(enc: dict | None) -> np.ndarray | None:
    """The stats of encode_stats, or None for a style saved without them (or stored in another shape)."""
    if not isinstance(enc, dict) or enc.get("shape") != [len(SCALES), DIRECTIONS, QUANTILES]:
        return None
    try:
        raw = np.frombuffer(base64.b64decode(enc["float16"], validate=True), "<f2")
        return raw.astype(np.float32).reshape(enc["shape"])
    except (ValueError, TypeError, KeyError):
        return None
