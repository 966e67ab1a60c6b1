"""Geometric self-ensemble: average a tile's estimate over rotations and flips.

The network is not exactly equivariant, so its errors under the eight symmetries of the square are
partly independent; averaging them is a cheap posterior-mean improvement at n times the cost
(one-step denoising of 24 held-out corpus crops, sigma 15 / 50: +0.19 / +0.17 dB with 2 transforms,
+0.27 / +0.24 with 3, +0.30 / +0.27 with 4, +0.36 / +0.31 with 8).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .defaults import ENSEMBLE_SIZES

# transform i = (i % 4 quarter turns, then a horizontal flip if i >= 4); --ensemble N averages the
# first N. Every prefix from 3 on mixes turns and flips; the second transform hardly matters
# (all seven partners of the identity came within 0.01 dB of each other on held-out crops)
ORDER = (0, 6, 5, 3, 2, 4, 7, 1)


def _forward(x: torch.Tensor, i: int) -> torch.Tensor:
    x = torch.rot90(x, i % 4, (-2, -1))
    return x.flip(-1) if i >= 4 else x


def _inverse(x: torch.Tensor, i: int) -> torch.Tensor:
    x = x.flip(-1) if i >= 4 else x
    return torch.rot90(x, -(i % 4), (-2, -1))


def dihedral_mean(
    fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    x: torch.Tensor,
    cond: torch.Tensor | None,
    n: int,
) -> torch.Tensor:
    """mean over the first n transforms T of T^-1 fn(T x, T cond); n = 1 is fn itself."""
    if n not in ENSEMBLE_SIZES:
        raise ValueError(f"ensemble size {n}: expected {ENSEMBLE_SIZES[0]}..{ENSEMBLE_SIZES[-1]}")
    total = None
    for i in ORDER[:n]:
        y = _inverse(fn(_forward(x, i), None if cond is None else _forward(cond, i)), i).float()
        total = y if total is None else total + y
    return total / n
