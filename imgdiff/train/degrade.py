"""Degradations synthesised on the fly, on whatever device the batch lives on.

Images are float tensors in [-1, 1], shape (B, C, H, W); sigma in model units is sigma255 / 127.5.
"""

from __future__ import annotations

import torch


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Clip to the displayable range and round to 8-bit codes, as writing a PNG does."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def add_gaussian(
    x: torch.Tensor, sigma: torch.Tensor, gen: torch.Generator | None = None, clip_prob: float = 0.5
) -> torch.Tensor:
    """AWGN with a per-image sigma (model units); some samples clipped and quantised like real files."""
    noisy = x + torch.randn(x.shape, generator=gen, device=x.device) * sigma[:, None, None, None]
    if clip_prob > 0:
        pick = torch.rand(x.shape[0], generator=gen, device=x.device) < clip_prob
        noisy = torch.where(pick[:, None, None, None], quantise(noisy), noisy)
    return noisy
