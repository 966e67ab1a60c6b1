"""Resampling shared by training, inference and evaluation, so all three see the same kernel."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def downscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscale (PIL-compatible kernel): the benchmark's LR model."""
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)


def upscale_bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Plain bicubic upsampling: the condition the SR network refines (identity at scale 1)."""
    if scale == 1:
        return x
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
