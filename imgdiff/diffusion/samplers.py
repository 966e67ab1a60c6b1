"""Samplers as short pure functions over denoiser(x, sigma) (k-diffusion style).

`noise(i)` supplies the fresh Gaussian noise for step i; callers draw it for the whole image so
tiles of a tiled run agree. With one step both samplers return denoiser(x, sigma_0).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

DenoiserFn = Callable[[torch.Tensor, float], torch.Tensor]
NoiseFn = Callable[[int], torch.Tensor]


def sample_heun(denoiser: DenoiserFn, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Deterministic probability-flow ODE, Heun's 2nd order (Euler on the final step to sigma=0)."""
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        d = (x - denoiser(x, s)) / s
        x_next = x + (s_next - s) * d
        if s_next > 0:
            d2 = (x_next - denoiser(x_next, s_next)) / s_next
            x_next = x + (s_next - s) * (d + d2) / 2
        x = x_next
    return x


def ancestral_step_sizes(s: float, s_next: float, eta: float = 1.0) -> tuple[float, float]:
    """Split the move s -> s_next into a deterministic part (down) and fresh noise (up)."""
    if s_next == 0:
        return 0.0, 0.0
    up = min(s_next, eta * (s_next**2 * (s**2 - s_next**2) / s**2) ** 0.5)
    down = (s_next**2 - up**2) ** 0.5
    return down, up


def sample_ancestral(
    denoiser: DenoiserFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: NoiseFn,
    eta: float = 1.0,
) -> torch.Tensor:
    """Euler-ancestral: a stochastic sampler of the reverse SDE; started at a noisy photo's
    own sigma it draws from the denoising posterior p(clean | noisy)."""
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoiser(x, s)
        down, up = ancestral_step_sizes(s, s_next, eta)
        x = x0 + (x - x0) * (down / s)
        if up > 0:
            x = x + noise(i) * up
    return x
