"""Schedules, samplers and preconditioning against closed-form results."""

from __future__ import annotations

import math

import pytest
import torch

from imgdiff.diffusion.precond import Denoiser, edm_loss_weight
from imgdiff.diffusion.samplers import ancestral_step_sizes, sample_ancestral, sample_heun
from imgdiff.diffusion.schedules import karras_sigmas, sigma_from_strength


def gaussian_denoiser(sd: float):
    """The exact MMSE denoiser for data ~ N(0, sd^2)."""
    return lambda x, s: x * sd**2 / (sd**2 + s**2)


def test_karras_schedule_endpoints_and_order():
    s = karras_sigmas(10, 0.002, 80.0)
    assert len(s) == 11 and s[-1] == 0
    assert math.isclose(float(s[0]), 80.0, rel_tol=1e-5) and math.isclose(float(s[-2]), 0.002, rel_tol=1e-4)
    assert torch.all(s[:-1] > s[1:])
    assert karras_sigmas(1, 0.002, 5.0).tolist() == [5.0, 0.0]


def test_strength_mapping():
    assert sigma_from_strength(0, 0.02, 80) == 0
    assert math.isclose(sigma_from_strength(1, 0.02, 80), 80)
    assert sigma_from_strength(0.3, 0.02, 80) < sigma_from_strength(0.6, 0.02, 80)
    with pytest.raises(ValueError):
        sigma_from_strength(1.5, 0.02, 80)


def test_heun_matches_probability_flow_closed_form():
    # For N(0, sd^2) data the ODE maps x_T to x_T * sd / sqrt(sd^2 + sigma_max^2).
    sd, smax = 0.5, 20.0
    x = torch.linspace(-3, 3, 7, dtype=torch.float64) * math.sqrt(sd**2 + smax**2)
    out = sample_heun(gaussian_denoiser(sd), x, karras_sigmas(200, 1e-4, smax).double())
    expect = x * sd / math.sqrt(sd**2 + smax**2)
    assert torch.allclose(out, expect, rtol=2e-3, atol=2e-4)


def test_one_step_returns_the_denoiser_estimate():
    den = gaussian_denoiser(0.5)
    x = torch.randn(5)
    sig = karras_sigmas(1, 0.002, 2.0)
    assert torch.allclose(sample_heun(den, x, sig), den(x, 2.0))
    assert torch.allclose(sample_ancestral(den, x, sig, lambda i: torch.randn(5)), den(x, 2.0))


def test_ancestral_split_preserves_variance():
    for s, n in [(10.0, 3.0), (1.0, 0.5), (0.2, 0.01)]:
        down, up = ancestral_step_sizes(s, n)
        assert math.isclose(down**2 + up**2, n**2, rel_tol=1e-9)
    assert ancestral_step_sizes(1.0, 0.0) == (0.0, 0.0)


def test_ancestral_samples_the_data_distribution():
    sd, smax = 0.5, 40.0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40000, generator=g, dtype=torch.float64) * math.sqrt(sd**2 + smax**2)
    out = sample_ancestral(
        gaussian_denoiser(sd),
        x,
        karras_sigmas(500, 1e-3, smax).double(),
        lambda i: torch.randn(40000, generator=g, dtype=torch.float64),
    )
    assert abs(float(out.std()) - sd) < 0.02
    assert abs(float(out.mean())) < 0.02


def test_ancestral_from_a_noisy_observation_samples_the_posterior():
    # y = x + sigma*e with x ~ N(0, sd^2): posterior is N(y sd^2/(sd^2+s^2), sd^2 s^2/(sd^2+s^2)).
    sd, s = 0.5, 0.3
    g = torch.Generator().manual_seed(1)
    y = torch.full((40000,), 0.4, dtype=torch.float64)
    out = sample_ancestral(
        gaussian_denoiser(sd),
        y,
        karras_sigmas(500, 1e-4, s).double(),
        lambda i: torch.randn(40000, generator=g, dtype=torch.float64),
    )
    mean = 0.4 * sd**2 / (sd**2 + s**2)
    std = math.sqrt(sd**2 * s**2 / (sd**2 + s**2))
    assert abs(float(out.mean()) - mean) < 0.01
    assert abs(float(out.std()) - std) < 0.01


class ZeroNet(torch.nn.Module):
    def forward(self, x, c_noise, cond=None):
        return torch.zeros_like(x)


def test_preconditioning_scalings():
    d = Denoiser(ZeroNet(), sigma_data=0.5)
    x = torch.randn(2, 3, 4, 4)
    sigma = torch.tensor([0.1, 3.0])
    c_skip, c_out, c_in = d.scalings(sigma)
    assert torch.allclose(c_skip, 0.25 / (sigma**2 + 0.25))
    assert torch.allclose(c_out, sigma * 0.5 / torch.sqrt(sigma**2 + 0.25))
    assert torch.allclose(c_in, 1 / torch.sqrt(sigma**2 + 0.25))
    out = d(x, sigma)
    assert torch.allclose(out, x * c_skip[:, None, None, None])
    assert torch.allclose(edm_loss_weight(sigma, 0.5), 1 / c_out**2)


def test_restoration_steps_refine_the_mean_from_a_low_sigma():
    """Step 1 is always the conditional mean from sigma_max; further steps restart at REFINE_SIGMA."""
    from imgdiff.pipelines.restore import REFINE_SIGMA, restore_sigmas

    assert restore_sigmas(1, 0.002, 20.0).tolist() == [20.0, 0.0]
    s = restore_sigmas(4, 0.002, 20.0)
    assert len(s) == 5 and s[0] == 20.0 and abs(float(s[1]) - REFINE_SIGMA) < 1e-7 and s[-1] == 0
    assert bool((s[1:-1] > 0).all()) and bool((s[:-1] > s[1:]).all())
    assert abs(float(s[-2]) - 0.002) < 1e-6
