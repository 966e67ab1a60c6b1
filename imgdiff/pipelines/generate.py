"""Unconditional texture generation from pure noise (deterministic Heun sampler).

Sizes above the training size are sampled patch-wise: the tiled denoiser cross-fades patches at
every step, so the whole canvas stays one coherent sample. `tileable` switches the network to
wrap-around padding and samples the canvas in one piece, so opposite edges match."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..device import Runtime
from ..diffusion.samplers import sample_heun
from ..diffusion.schedules import karras_sigmas
from ..errors import ImgdiffError
from ..hub import LoadedModel
from ..io import ImageData
from ..texture import match_texture
from .common import Progress, TiledDenoiser, from_tensor, whole_image_noise


def generate_image(
    model: LoadedModel,
    rt: Runtime,
    width: int,
    height: int,
    steps: int = 24,
    seed: int = 0,
    tileable: bool = False,
    progress: Progress = None,
) -> ImageData:
    m = model.denoiser.net.multiple
    if width % m or height % m or width < m or height < m:
        raise ImgdiffError(f"--size must be a positive multiple of {m} (got {width}x{height})")
    shape = (1, 3, height, width)
    x = whole_image_noise(shape, seed, rt.device)(-1) * model.config["sigma_max"]
    sigmas = karras_sigmas(steps, model.config["sigma_min"], model.config["sigma_max"])
    if tileable:
        rt = replace(rt, tile=0, overlap=0)
    else:
        size = int(model.config.get("size", 64))
        rt = replace(rt, tile=2 * size, overlap=size // 2)
    den = TiledDenoiser(model, rt, (height, width), 2 * steps - 1, progress=progress)  # Heun: 2 calls a step
    model.denoiser.net.set_circular(tileable)
    try:
        out = sample_heun(den, x, sigmas)
    finally:
        model.denoiser.net.set_circular(False)
    like = ImageData(pixels=np.zeros((height, width, 3), np.float32))
    img = from_tensor(out, like)
    texture = model.style_look[1]  # a learnt style's texture statistics (stylize.py says why)
    if texture is None:
        return img
    return img.with_pixels(match_texture(img.pixels, texture, seed=seed, wrap=tileable))
