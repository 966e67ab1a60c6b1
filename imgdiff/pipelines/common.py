"""Pieces every pipeline shares: tensors <-> ImageData, the tiled denoiser, whole-image noise."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..device import Runtime, guarded
from ..ensemble import dihedral_mean
from ..hub import LoadedModel
from ..io import ImageData
from ..models.onednn import int8_min_channels
from ..tiling import count_tiles, run_tiled

Progress = Callable[[int, int], None] | None  # (done, total) model evaluations


def to_tensor(img: ImageData, device: torch.device) -> torch.Tensor:
    """(1, 3, H, W) in [-1, 1]; grey is replicated to three channels for the colour models."""
    px = img.pixels if not img.grey else np.repeat(img.pixels, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(px.transpose(2, 0, 1)))[None].to(device) * 2 - 1


def from_tensor(x: torch.Tensor, like: ImageData, alpha: np.ndarray | None = None) -> ImageData:
    px = ((x[0].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()
    if like.grey:
        px = px.mean(axis=2, keepdims=True)
    return like.with_pixels(np.ascontiguousarray(px, dtype=np.float32), alpha)


def whole_image_noise(shape: tuple[int, ...], seed: int, device: torch.device) -> Callable[[int], torch.Tensor]:
    """Step i's noise, drawn on the CPU from (seed, i) for the whole image: identical on every
    device and for every tiling."""

    def noise(i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        return torch.randn(shape, generator=g).to(device)

    return noise


class TiledDenoiser:
    """denoiser(x, sigma) for the samplers, evaluated tile by tile with the runtime's fallbacks."""

    def __init__(
        self,
        model: LoadedModel,
        rt: Runtime,
        size: tuple[int, int],
        passes: int,
        cond: torch.Tensor | None = None,
        progress: Progress = None,
    ) -> None:
        """size: (height, width) of the images the sampler will pass; passes: how many times it will."""
        self.model, self.rt, self.cond = model, rt, cond
        self.progress = progress
        self.multiple = model.denoiser.net.multiple
        model.denoiser.net.set_int8(rt.int8, int8_min_channels(model.config))
        self.done = 0
        self.total = passes * count_tiles(*size, rt.tile, rt.overlap, self.multiple)

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        s = torch.tensor([sigma], device=x.device)
        net = self.model.denoiser

        def one(xt: torch.Tensor, ct: torch.Tensor | None) -> torch.Tensor:
            if self.rt.device.type == "cpu":
                xt = xt.contiguous(memory_format=torch.channels_last)
            return net(xt, s, ct)

        def fn(xt: torch.Tensor, ct: torch.Tensor | None) -> torch.Tensor:
            return dihedral_mean(one, xt, ct, self.rt.ensemble)

        def tick() -> None:
            self.done += 1
            if self.progress:
                self.progress(self.done, self.total)

        call = guarded(fn, self.rt, self.multiple)
        with torch.inference_mode():
            return run_tiled(call, x, self.cond, self.rt.tile, self.rt.overlap, self.multiple, on_tile=tick)
