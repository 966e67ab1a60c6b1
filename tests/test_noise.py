"""The blind noise estimator behind --sigma auto."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgdiff.noise import box_average, estimate_sigma, read_noise
from tests.conftest import EXAMPLES


@pytest.mark.parametrize("sigma", [10, 25, 45])
def test_estimates_awgn_level(sigma):
    clean = np.asarray(Image.open(EXAMPLES / "clean.png").convert("RGB")).astype(np.float64)
    noisy = np.clip(clean + np.random.default_rng(sigma).normal(0, sigma, clean.shape), 0, 255).round()
    assert abs(estimate_sigma((noisy / 255).astype(np.float32)) - sigma) < 2.5


def test_textured_colour_and_grey_as_rgb():
    """Luminance texture with little flat area: the chroma channels see through it. And a grey photo
    saved as RGB (identical noise in every channel, no chroma at all) still reads its noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:200, 0:300]
    texture = 128 + 60 * np.sin(x / 1.7) * np.cos(y / 2.3) + rng.normal(0, 25, (200, 300)).cumsum(1) % 40
    for sigma in (5, 15):
        colour = np.clip(texture[..., None] * [1.0, 0.9, 0.8] + rng.normal(0, sigma, (200, 300, 3)), 0, 255).round()
        assert abs(estimate_sigma((colour / 255).astype(np.float32)) - sigma) < 1.5
        grey = np.clip(texture + rng.normal(0, sigma, (200, 300)), 0, 255).round()
        got = estimate_sigma((np.repeat(grey[..., None], 3, 2) / 255).astype(np.float32))
        assert 0.8 * sigma < got < 2.5 * sigma  # luminance texture only: loose, but never zero


def test_tiny_or_flat_images():
    assert estimate_sigma(np.zeros((8, 8, 3), np.float32)) == 0.0
    flat = np.full((64, 64, 1), 0.5, np.float32)
    assert estimate_sigma(flat) < 0.5


@pytest.mark.parametrize("sigma", [20, 40])
def test_mostly_saturated_image(sigma):
    """A white page with a black square and a grey ramp: at sigma 40 clipping removes most of the
    noise's variance (an estimator that ignores it reads ~25); the clip-aware estimate stays close."""
    clean = np.full((240, 320, 3), 255.0)
    clean[100:140, 60:260] = np.linspace(20, 235, 200)[None, :, None]
    clean[20:60, 20:60] = 0
    noisy = np.clip(clean + np.random.default_rng(sigma).normal(0, sigma, clean.shape), 0, 255).round()
    assert abs(estimate_sigma((noisy / 255).astype(np.float32)) - sigma) < 2.5


@pytest.mark.parametrize("colour", [(0, 0, 255), (0, 0, 0), (20, 20, 20)])
def test_clipped_flat_areas_are_not_read_low(colour):
    """Half-clipped noise: a patch mean near a limit is itself noisy; mapping it to the censored
    variance must not clamp at the limit (that read such areas ~4 % low)."""
    flat = np.ones((160, 240, 3)) * np.array(colour, dtype=np.float64)
    noisy = np.clip(flat + np.random.default_rng(1).normal(0, 50, flat.shape), 0, 255).round()
    assert abs(estimate_sigma((noisy / 255).astype(np.float32)) - 50) < 1.0


def test_views_and_dtypes_read_the_same():
    """The patches are gathered through a sliding-window view of the interleaved pixels: a strided
    view, float64 or a grey channel must give the same patches as a contiguous float32 copy."""
    rng = np.random.default_rng(3)
    clean = np.asarray(Image.open(EXAMPLES / "clean.png").convert("RGB")).astype(np.float64)
    noisy = (np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).round() / 255).astype(np.float32)
    view = noisy[5:-3, 2:]  # not contiguous
    want = estimate_sigma(np.ascontiguousarray(view))
    assert abs(want - 12) < 2
    assert estimate_sigma(view) == pytest.approx(want, abs=1e-4)
    assert estimate_sigma(view.astype(np.float64)) == pytest.approx(want, abs=1e-3)
    grey = np.ascontiguousarray(view[..., 1:2])
    assert abs(estimate_sigma(grey) - 12) < 2
    assert estimate_sigma(np.repeat(grey, 3, 2)) == pytest.approx(estimate_sigma(grey), abs=1e-4)


def test_box_average_is_the_2x2_mean():
    x = np.random.default_rng(0).random((9, 12, 3)).astype(np.float32)
    want = x[:8].reshape(4, 2, 6, 2, 3).mean((1, 3))
    np.testing.assert_allclose(box_average(x), want, rtol=1e-6)


def test_reading_on_two_threads_is_the_same_reading():
    rng = np.random.default_rng(5)
    clean = np.asarray(Image.open(EXAMPLES / "clean.png").convert("RGB")).astype(np.float64)
    noisy = (np.clip(clean + rng.normal(0, 8, clean.shape), 0, 255).round() / 255).astype(np.float32)
    assert read_noise(noisy, threads=2) == read_noise(noisy) and read_noise(noisy).kind == "white"
    tiny = noisy[:20, :40]  # too small to average: one estimate serves both
    assert read_noise(tiny, threads=2).averaged == read_noise(tiny).sigma


def test_prefix_covariance_matches_the_kept_patches():
    """The cumulative block tables give the same sigma as the covariance of the kept rows themselves,
    for prefixes that end inside a block, on a block boundary, and with rows dropped."""
    from imgdiff.noise import _pca_sigma, _PrefixCovariance

    rng = np.random.default_rng(3)
    count = 2 * _PrefixCovariance.BLOCK + 300
    channels = (rng.normal(0, 7, (count, 3, 49)) + rng.normal(0, 30, (count, 3, 1))).astype(np.float32)
    grad = rng.random(count).astype(np.float32)
    kept = _PrefixCovariance(channels, 2, grad)
    rows = channels[:, :2].reshape(-1, 49)[kept.order].astype(np.float64)
    assert np.all(np.diff(kept.grad) >= 0)
    for end, drop in [(len(rows), []), (2 * _PrefixCovariance.BLOCK, [5, 900]), (1500, [0, 1499]), (700, [])]:
        keep = np.setdiff1d(np.arange(end), drop)
        x = rows[keep]
        want = _pca_sigma(np.cov(x.T, bias=True))
        assert kept.sigma(end, np.array(drop, np.intp)) == pytest.approx(want, rel=1e-4)
