"""Conditional restoration (super-resolution, blind real-photo denoising): diffuse the residual
clean - bicubic(degraded), conditioned on bicubic(degraded) (the degraded image itself at scale 1).

Sampling starts from pure noise at sigma_max; with one step the network's estimate of the
residual's conditional mean is returned (the PSNR mode)."""

from __future__ import annotations

import cv2
import numpy as np

from ..device import Runtime
from ..diffusion.samplers import sample_ancestral
from ..diffusion.schedules import karras_sigmas
from ..hub import LoadedModel
from ..io import ImageData
from ..resample import upscale_bicubic
from .common import Progress, TiledDenoiser, from_tensor, to_tensor, whole_image_noise


def restore_image(
    img: ImageData, model: LoadedModel, rt: Runtime, steps: int = 1, seed: int = 0, progress: Progress = None
) -> ImageData:
    scale = int(model.config["scale"])
    lr = to_tensor(img, rt.device)
    cond = upscale_bicubic(lr, scale)
    shape = tuple(cond.shape)
    noise = whole_image_noise(shape, seed, rt.device)
    sigmas = karras_sigmas(steps, model.config["sigma_min"], model.config["sigma_max"])
    den = TiledDenoiser(model, rt, shape[-2:], steps, cond, progress)
    x = noise(-1) * model.config["sigma_max"]
    residual = sample_ancestral(den, x, sigmas, noise)
    alpha = None
    if img.alpha is not None and scale > 1:
        h, w = img.alpha.shape
        alpha = np.clip(cv2.resize(img.alpha, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC), 0, 1)
    return from_tensor(cond + residual, img, alpha)
