"""EDM preconditioning (Karras et al. 2022): turns a raw network F into a denoiser D(x, sigma).

With c_skip -> 0 at large sigma the network predicts the clean signal outright, so one Euler step
from sigma_max returns the conditional mean: the maximum-PSNR estimate that `--steps 1` promises.
"""

from __future__ import annotations

import torch
from torch import nn


class Denoiser(nn.Module):
    """D(x, sigma, cond) = c_skip x + c_out F(c_in x, c_noise, cond), on signals of std ~sigma_data."""

    def __init__(self, net: nn.Module, sigma_data: float) -> None:
        super().__init__()
        self.net = net
        self.sigma_data = sigma_data

    def scalings(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sd2 = self.sigma_data**2
        s2 = sigma**2
        c_skip = sd2 / (s2 + sd2)
        c_out = sigma * self.sigma_data / (s2 + sd2).sqrt()
        c_in = 1 / (s2 + sd2).sqrt()
        return c_skip, c_out, c_in

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        sigma = sigma.to(torch.float32).reshape(-1).expand(x.shape[0])
        c_skip, c_out, c_in = (s[:, None, None, None] for s in self.scalings(sigma))
        c_noise = sigma.clamp_min(1e-5).log() / 4
        f = self.net((x * c_in).to(x.dtype), c_noise, cond).float()
        return c_skip * x.float() + c_out * f


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """lambda(sigma) = 1/c_out^2: equalises the effective loss scale across noise levels."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
