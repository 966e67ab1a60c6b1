"""Noise-level schedules for sampling: a decreasing list of sigmas ending in 0."""

from __future__ import annotations

import torch


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """EDM's schedule: uniform in sigma^(1/rho); dense near sigma_min where detail forms."""
    if n < 1:
        raise ValueError("need at least one step")
    if n == 1:
        return torch.tensor([sigma_max, 0.0])
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, torch.zeros(1, dtype=torch.float64)]).float()


def sigma_from_strength(strength: float, sigma_min: float, sigma_max: float) -> float:
    """Map SDEdit strength in [0, 1] to a starting noise level, log-linearly."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError("strength must be in [0, 1]")
    if strength == 0:
        return 0.0
    return float(sigma_min * (sigma_max / sigma_min) ** strength)
