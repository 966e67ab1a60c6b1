"""Denoising: a noisy photo already lies on the variance-exploding path at its own sigma, so the
sampler simply starts there. One step is D(y, sigma), the MMSE estimate; more ancestral steps
draw from p(clean | noisy): sharper texture, slightly lower PSNR."""

from __future__ import annotations

import math

from ..device import Runtime
from ..diffusion.samplers import sample_ancestral
from ..diffusion.schedules import karras_sigmas
from ..errors import ImgdiffError
from ..hub import LoadedModel
from ..io import ImageData
from ..noise import estimate_sigma
from .common import Progress, TiledDenoiser, from_tensor, to_tensor, whole_image_noise


def resolve_sigma(img: ImageData, sigma: float | None, model: LoadedModel, estimate: float | None = None) -> float:
    """sigma on the 0..255 scale. A told sigma must lie in the model's range. None means the image's
    own estimate (`estimate` where the caller has read it already), and an estimate above the range
    is clamped to its top: the photo is noisier than anything the model saw, its strongest setting
    removes the most, and refusing would leave the user nothing (`--sigma` can still ask otherwise)."""
    limit = model.config["sigma_max"] * 127.5
    if sigma is None:
        s = estimate_sigma(img.pixels) if estimate is None else float(estimate)
        if not math.isfinite(s):
            raise ImgdiffError("could not estimate the noise level (pass --sigma)")
        return min(max(s, 0.0), limit)
    s = float(sigma)
    if not 0 <= s <= limit + 1e-6:
        raise ImgdiffError(f"sigma {s:.1f} is outside this model's range 0..{limit:.0f}")
    return s


def denoise_image(
    img: ImageData,
    model: LoadedModel,
    rt: Runtime,
    sigma255: float,
    steps: int = 1,
    seed: int = 0,
    progress: Progress = None,
) -> ImageData:
    if sigma255 <= 0:
        return img.with_pixels(img.pixels.copy())
    x = to_tensor(img, rt.device)
    s = sigma255 / 127.5
    # the last noisy level is s/10: lower levels only re-denoise what is already clean (2 steps = 1)
    sigmas = karras_sigmas(steps, s / 10, s)
    den = TiledDenoiser(model, rt, x.shape[-2:], steps, progress=progress)
    out = sample_ancestral(den, x, sigmas, whole_image_noise(tuple(x.shape), seed, rt.device))
    return from_tensor(out, img)
