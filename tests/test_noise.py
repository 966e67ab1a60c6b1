"""The blind noise estimator behind --sigma auto."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgdiff.noise import estimate_sigma
from tests.conftest import EXAMPLES


@pytest.mark.parametrize("sigma", [10, 25, 45])
def test_estimates_awgn_level(sigma):
    clean = np.asarray(Image.open(EXAMPLES / "clean.png").convert("RGB")).astype(np.float64)
    noisy = np.clip(clean + np.random.default_rng(sigma).normal(0, sigma, clean.shape), 0, 255).round()
    assert abs(estimate_sigma((noisy / 255).astype(np.float32)) - sigma) < 2.5


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
