"""Blind estimate of additive white Gaussian noise (sigma on the 0..255 scale).

PCA of weak-texture patches (Chen, Zhu & Heng, ICCV 2015; Liu, Tanaka & Okutomi, TIP 2013): the
smallest eigenvalues of the patch covariance belong to noise alone; the noise variance is the
largest tail of eigenvalues whose mean equals its median. Textured patches leak signal into those
eigenvalues, so the estimate is refined on patches whose gradient energy is no more than noise
of the current estimate would give. Clipping to 0..255 shrinks the noise of patches near the
limits: the estimate divides out the censored-normal variance ratio of the patches it used, and
skips patches where that ratio is small.

Colour images are estimated on the two chroma channels of an orthonormal opponent transform: the
noise (independent per RGB channel) keeps its sigma there, while most texture, being luminance,
cancels. On held-out corpus crops this took the worst error of textured photos at sigma 5 from
+2.7 to +0.3. Texture is judged on the luminance, whose noise is independent of the chroma noise,
so choosing flat patches does not also choose low-noise ones. With that and unclamped patch means
in the clipping correction, 160 corpus crops (481 x 321) at sigma 50 went from mean error -0.29
and 3 beyond ±2 to -0.10 and none (sigma 5-35: mean within ±0.05, none beyond ±2).

The reading runs before every no-options `imgdiff denoise`, so its cost is the user's: 50k sampled
patches (was 200k), gathered once in float32 and everything else computed from them, took a
0.26 MP photo's `read_noise` from 0.48 to 0.06 s (12 CBSD68 images through the CLI: 7.3 s with no
options, now 3.3 s with the two estimates on two threads, against 2.8 s with `--sigma`). On the
held-out photographs (512² crops, white noise, 3 noise seeds) mean / max |error| moved from
0.07 / 0.55 to 0.05 / 0.57 at sigma 5 and from -0.16..-0.21 / 0.60-0.75 to -0.21..-0.28 /
0.64-0.84 at sigma 50; `benchmarks/noise_kind.py` still sends 2 of 165 held-out conditions to the
wrong model. Each refinement step re-estimated by gathering and multiplying all kept patches again;
ordered once by gradient energy, the kept sets are prefixes whose sums come from cumulative block
tables (`_PrefixCovariance`), and the opponent transform is one batched product: 12 CBSD68 images
read in 41 ms each on one thread (was 62) and 25 ms on two (was 41), estimates within 0.01.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PATCH = 7
MAX_PATCHES = 50_000
MIN_SHRINK = 0.3  # patches whose noise variance clipping shrinks below this are too unreliable


def estimate_sigma(pixels: np.ndarray, seed: int = 0) -> float:
    """pixels: float (H, W, C) in [0, 1]. Returns sigma in 0..255 units."""
    h, w, c = pixels.shape
    if h < PATCH * 2 or w < PATCH * 2:
        return 0.0
    colour = c == 3 and float(np.abs(pixels[..., 1:] - pixels[..., :1]).max()) > 0.5 / 255
    if c == 3 and not colour:  # grey saved as RGB: the channels carry the same noise, chroma none
        pixels, c = pixels[..., :1], 1
    rng = np.random.default_rng(seed)
    n_pos = (h - PATCH + 1) * (w - PATCH + 1)
    count = min(MAX_PATCHES // c + 1, n_pos)
    # sorted: the gather below then walks memory forwards; the estimate does not depend on order
    idx = np.sort(rng.choice(n_pos, size=count, replace=False)) if count < n_pos else np.arange(n_pos)
    ys, xs = np.divmod(idx, w - PATCH + 1)
    # (count, C, PATCH²) patches in one gather through a sliding-window view (no index array): all
    # below works on these, so the cost follows the number of patches, not of pixels
    windows = sliding_window_view(pixels, (PATCH, PATCH), axis=(0, 1))  # (H-6, W-6, C, 7, 7), a view
    src = np.ascontiguousarray(windows[ys, xs], dtype=np.float32).reshape(count, c, PATCH * PATCH)
    if colour:
        # orthonormal opponent chroma, where white noise keeps its sigma while texture (mostly
        # luminance) largely cancels; texture is judged on the luminance, whose noise is independent
        # of both: judging it on the noisy channel itself keeps the patches whose noise happened to
        # come out low, and read textured photos low at high sigma
        basis = np.array([[1, -1, 0], [1, 1, -2], [1, 1, 1]]) / np.sqrt([[2], [6], [3]])
        weights = basis[:2] ** 2  # a chroma channel's noise variance in terms of the source channels'
    else:
        basis = weights = np.ones((1, 1))
    # one batched product gives every patch's channels (count, rows, PATCH²): chroma then luminance
    channels = np.matmul((255 * basis).astype(np.float32), src)
    judge = channels[:, -1].reshape(count, PATCH, PATCH)
    down, across = np.diff(judge, axis=1).reshape(count, -1), np.diff(judge, axis=2).reshape(count, -1)
    grad = np.einsum("np,np->n", down, down) + np.einsum("np,np->n", across, across)
    m = 2 * PATCH * (PATCH - 1)  # differences per patch; each has variance 2 sigma^2 under pure noise
    means = _DistinctMeans(src.mean(2) * 255)
    kept = _PrefixCovariance(channels, len(weights), grad)
    sigma = first = kept.sigma(len(kept.grad), np.zeros(0, np.intp))
    seen = [sigma]
    for _ in range(12):
        # far tail of noise-only energy; never tighter than half the first estimate, or flat
        # (e.g. JPEG-smoothed) regions alone survive and drag the estimate to zero
        ref = max(sigma, 0.5 * first, 0.5)
        limit = 2 * ref**2 * m * (1 + 4 * np.sqrt(2 / m))
        # a channel's noise variance is the basis-weighted mean of the source channels' clipped ones
        per_source = means.clipped_variance_ratio(max(sigma, 0.5))
        shrink = (per_source @ weights.T).ravel()[kept.order]
        end = int(np.searchsorted(kept.grad, limit))  # the patches under the limit lead the order
        drop = np.flatnonzero(shrink[:end] <= MIN_SHRINK)
        if end - len(drop) < 500:
            break
        # clipping to 0..255 shrinks the noise of patches near the limits by a known factor
        mean_shrink = (shrink[:end].sum() - shrink[drop].sum()) / (end - len(drop))
        new = kept.sigma(end, drop) / np.sqrt(mean_shrink)
        if abs(new - sigma) < 0.02:
            return new
        if any(abs(new - s) < 0.02 for s in seen[:-1]):
            # a cycle: the kept set flips between thresholds either side of the fixed point
            return (new + sigma) / 2
        seen.append(new)
        sigma = new
    return sigma


class _DistinctMeans:
    """Patch means looked up once per distinct value (means of 8-bit pixels repeat a lot)."""

    def __init__(self, means: np.ndarray):
        self.values, inverse = np.unique(means, return_inverse=True)
        self.inverse = inverse.reshape(means.shape)

    def clipped_variance_ratio(self, sigma: float) -> np.ndarray:
        return clipped_variance_ratio(self.values, sigma)[self.inverse]


class _PrefixCovariance:
    """Covariances of the patches under a texture limit, less a few, without gathering them each time.

    The refinement re-estimates on the patches whose gradient energy is under a limit that moves
    with the estimate: ordered by that energy once, every kept set is a prefix less the few that
    clipping spoils. Cumulative per-block sums give any prefix, so an iteration multiplies one
    block and the dropped rows, not every kept patch again. (No BLAS product of all patches at
    once: OpenBLAS would thread it and fight the second reading running beside it.)"""

    BLOCK = 1024

    def __init__(self, channels: np.ndarray, noisy: int, grad: np.ndarray):
        """channels: (count, rows, PATCH²), of which the first `noisy` rows are estimated."""
        count, rows, p = channels.shape
        by_grad = np.argsort(grad, kind="stable")
        self.order = (noisy * by_grad[:, None] + np.arange(noisy)).ravel()  # a patch's rows share its grad
        self.grad = np.repeat(grad[by_grad], noisy)
        x = channels.reshape(count * rows, p)[(rows * by_grad[:, None] + np.arange(noisy)).ravel()]
        x -= x.mean(0)  # centred once: the float32 products then lose no precision
        k = len(x) // self.BLOCK
        blocks = x[: k * self.BLOCK].reshape(k, self.BLOCK, p)
        zero = np.zeros((1, p))
        self.sums = np.concatenate([zero, np.cumsum(blocks.sum(1), 0, dtype=np.float64)])
        products = np.matmul(blocks.transpose(0, 2, 1), blocks).astype(np.float64)
        self.products = np.concatenate([zero[None].repeat(p, 1), np.cumsum(products, 0)])
        self.x = x

    def sigma(self, end: int, drop: np.ndarray) -> float:
        """The PCA noise sigma of rows [0, end) less the rows `drop` (all below end)."""
        full = end // self.BLOCK
        rest, gone = self.x[full * self.BLOCK : end], self.x[drop]
        total = self.sums[full] + rest.sum(0, dtype=np.float64) - gone.sum(0, dtype=np.float64)
        square = self.products[full] + (rest.T @ rest).astype(np.float64) - (gone.T @ gone).astype(np.float64)
        mean = total / (end - len(drop))
        return _pca_sigma(square / (end - len(drop)) - np.outer(mean, mean))


def clipped_variance_ratio(means: np.ndarray, sigma: float) -> np.ndarray:
    """Var(clip(mu + sigma Z, 0, 255)) / sigma^2 for patches whose clipped mean is `means`."""
    # means beyond the limits too: a patch's mean is itself noisy, and clamping the dark ones to 0
    # (the bright ones to 255) biased their ratios up and the estimate ~4 % low on clipped areas
    mu = np.arange(-math.ceil(4 * sigma), 256 + math.ceil(4 * sigma), dtype=np.float64)
    a, b = mu / sigma, (255 - mu) / sigma  # distances to the limits in sigmas
    erf = np.frompyfunc(math.erf, 1, 1)
    cdf = lambda z: 0.5 * (1 + erf(z / math.sqrt(2)).astype(np.float64))  # noqa: E731
    pdf = np.exp(-0.5 * a**2) / math.sqrt(2 * math.pi), np.exp(-0.5 * b**2) / math.sqrt(2 * math.pi)
    lo, hi = cdf(-a), 1 - cdf(b)  # probability of clipping at 0 and at 255
    mean = -a * lo + pdf[0] - pdf[1] + b * hi
    second = a**2 * lo + (1 - lo - hi) - a * pdf[0] - b * pdf[1] + b**2 * hi
    ratio = np.clip(second - mean**2, 0, 1)
    # a patch's observed mean is itself pulled towards mid-grey by clipping: map it back to mu first
    observed = mu + sigma * mean  # increasing in mu
    # piecewise linear in mu = piecewise linear in observed; only means near a limit are looked up
    # (most patches of most photos are not, and their ratio differs from 1 by less than 1e-6)
    flat = np.flatnonzero(ratio >= 1 - 1e-6)  # one middle run: the ratio rises, then falls, in mu
    if not len(flat):
        return np.interp(means, observed, ratio)
    out = np.ones(means.shape)
    look = (means <= observed[flat[0]]) | (means >= observed[flat[-1]])
    out[look] = np.interp(means[look], observed, ratio)
    return out


def _pca_sigma(cov: np.ndarray) -> float:
    """cov: the (PATCH², PATCH²) covariance of noisy patches."""
    eig = np.sort(np.linalg.eigvalsh(cov))  # ascending
    for k in range(len(eig), 0, -1):
        tau = eig[:k].mean()
        if tau <= (eig[(k - 1) // 2] + eig[k // 2]) / 2:  # the median of the sorted tail
            break
    return float(np.sqrt(max(tau - 1 / 12, 0.0)))  # minus the 8-bit quantisation noise


# --- white or camera noise ----------------------------------------------------------------------

# Measured on the held-out photo slice (benchmarks/noise_kind.py, 11 photographs x 17 conditions):
# white noise keeps its level when 2x2 pixels are averaged (the estimate of the averaged image,
# doubled, over the full-resolution one: 0.68-1.34 from sigma 3 to 50); demosaiced, tone-mapped camera
# noise is spatially correlated and keeps more (mean ratio 3.5-3.7 as PNG, higher after JPEG).
# JPEG also removes the fine grain the full-resolution estimate sees, so faint camera shots after
# q70-q90 read sigma 0.3-0.7 with no telling ratio: any reading below MIN_WHITE_SIGMA is "faint"
# (clean, or camera noise hidden from the estimator) and gets the blind real-photo model, which
# removes noise the sigma-conditioned model would leave in place (+1.7 dB on a benchmark ISO 800 shot
# reading 0.48) and changes clean held-out photos by only 45-47 dB PSNR (texture ratio 0.97-1.01). White noise
# of sigma 1 reads 0.9-1.3 and keeps the Gaussian model. Wrong models with these thresholds: 2 of 165
# (white sigma 1 read as camera; 256² crops); before the faint rule, 18 (15 faint camera shots left
# untouched). With film grain and white sigma 2 added, on 512² crops: 9 of 220 (23 without COARSE_RATIO).
CORRELATED_RATIO = 1.4
MIN_CAMERA_SIGMA = 0.75  # below this (averaged estimate) no reading is "camera"
MIN_WHITE_SIGMA = 0.8
# Coarse grain (scanned film, or noise blurred by a camera's processing) lies below the 2x2 scale too:
# under a little fine noise it reads white sigma ~1 with a 2x2 ratio of ~1.1-1.4, and the Gaussian
# model at that sigma leaves all of it. Averaged 4x4, it keeps most of its level (the estimate x4 over
# the full-resolution one: 2.6-11 for grain of std 4-8 blurred 1.5-2.5 px under white sigma 1, on
# held-out 512² crops), white noise does not (up to 3.5 at sigma 2-3 and 6.3 at sigma 1, texture
# leaking into the few flat patches the 4x4 image has). On smaller images the leak is larger (256²:
# 5.7 at sigma 3), so the test needs COARSE_MIN_SIDE; above COARSE_MAX_SIGMA no grain case needed it.
COARSE_RATIO = 4.0
COARSE_MIN_SIDE = 512
COARSE_MAX_SIGMA = 4.0


@dataclass
class NoiseReading:
    kind: str  # "white" (Gaussian model, sigma); "camera", "grain" or "faint" (blind real-photo model)
    sigma: float  # white-noise estimate at full resolution, 0..255
    averaged: float  # estimate after 2x2 averaging, doubled: equals sigma for white noise
    coarse: float | None = None  # after 4x4 averaging, x4; read only when the other two say white

    @property
    def ratio(self) -> float:
        return self.averaged / max(self.sigma, 0.5)

    @property
    def coarse_ratio(self) -> float | None:
        return None if self.coarse is None else self.coarse / max(self.sigma, 0.5)

    @property
    def blind(self) -> bool:
        """Whether the blind real-photo model, not the sigma-conditioned one, should run."""
        return self.kind != "white"


def box_average(pixels: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
    p = pixels[:h, :w]
    return (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]) / 4  # 4x faster than .mean((1, 3))


def read_noise(pixels: np.ndarray, threads: int = 1) -> NoiseReading:
    """Which model a photo's noise needs: white (estimated sigma) or camera-like (correlated).
    threads 2+: the averaged estimate runs beside the full-resolution one (numpy releases the GIL;
    12 CBSD68 images: 41 -> 25 ms each on 2 cores, the network idle meanwhile)."""
    half = box_average(pixels)  # the 2x2 average; the 4x4 one, when read, averages it again
    if min(pixels.shape[:2]) < 4 * PATCH:
        sigma = averaged = estimate_sigma(pixels)
    elif threads > 1:
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(estimate_sigma, half)
            sigma, averaged = estimate_sigma(pixels), 2 * future.result()
    else:
        sigma, averaged = estimate_sigma(pixels), 2 * estimate_sigma(half)
    camera = averaged >= MIN_CAMERA_SIGMA and averaged > CORRELATED_RATIO * max(sigma, 0.5)
    kind = "camera" if camera else "faint" if sigma < MIN_WHITE_SIGMA else "white"
    if kind == "white" and sigma < COARSE_MAX_SIGMA and min(pixels.shape[:2]) >= COARSE_MIN_SIDE:
        coarse = 4 * estimate_sigma(box_average(half))
        if coarse > COARSE_RATIO * max(sigma, 0.5):
            kind = "grain"
        return NoiseReading(kind, sigma, averaged, coarse)
    return NoiseReading(kind, sigma, averaged)
