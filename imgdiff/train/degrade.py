"""Degradations synthesised on the fly, on whatever device the batch lives on.

Images are float tensors in [-1, 1], shape (B, C, H, W); sigma in model units is sigma255 / 127.5.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch.nn import functional as F


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


def _u(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=gen, device=gen.device))


def _log_u(gen: torch.Generator, lo: float, hi: float) -> float:
    return math.exp(_u(gen, math.log(lo), math.log(hi)))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur, reflect-padded, per channel."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Round trip through an 8-bit JPEG (x: (1, 3, H, W) in [0, 1])."""
    a = (x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()[..., ::-1]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(a), [cv2.IMWRITE_JPEG_QUALITY, quality])
    b = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return torch.from_numpy(b.copy()).permute(2, 0, 1)[None].to(x.device, x.dtype) / 255


def mix_channels(n: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A noise field's colour channels mixed by a random matrix near identity (rows sum to 1): noise
    correlated across channels, as demosaicing or film dyes make it."""
    mix = torch.eye(3, device=n.device) + _u(gen, 0, 0.6) * torch.rand(3, 3, generator=gen, device=n.device)
    return torch.einsum("ij,bjhw->bihw", mix / mix.sum(1, keepdim=True), n)


def camera_noise(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Signal-dependent (Poisson-Gaussian, in linear light), channel- and spatially correlated noise.

    Demosaicing and in-camera processing correlate neighbouring pixels and colour channels; a random
    colour-mixing matrix and a light blur of the noise field mimic that."""
    lin = x.clamp(0, 1) ** 2.2
    shot, read = _log_u(gen, 1e-4, 3e-2), _log_u(gen, 1e-6, 3e-3)
    n = torch.randn(x.shape, generator=gen, device=x.device)
    if _u(gen, 0, 1) < 0.6:
        n = gaussian_blur(n, _u(gen, 0.4, 1.2))
        n = n / n.std().clamp_min(1e-6)
    n = mix_channels(n, gen)
    n = n / n.std().clamp_min(1e-6)
    noisy = lin + n * (shot * lin + read).sqrt()
    return noisy.clamp(0, 1) ** (1 / 2.2)


def film_grain(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Scanned film: grain a few pixels across, strongest in the mid-tones, under a scanner's fine noise.

    After the AV1 film-grain model (Norkin & Birkbeck, "Film grain synthesis for AV1 video codec", DCC
    2018): white Gaussian noise shaped by a spatial filter (here a Gaussian of 0.7-3 px, coarser than
    the demosaicing correlation of `camera.py`) and scaled by a function of intensity; colour film's
    dye clouds correlated across channels (`mix_channels`), or monochrome."""
    n = gaussian_blur(torch.randn(x.shape, generator=gen, device=x.device), _u(gen, 0.7, 3.0))
    n = n[:, :1].expand_as(x) if _u(gen, 0, 1) < 0.3 else mix_channels(n, gen)
    n = n / n.std().clamp_min(1e-6)
    luma = x.mean(1, keepdim=True).clamp(0, 1)
    amount = _log_u(gen, 2, 20) / 255 * (0.4 + 2.4 * luma * (1 - luma))  # 0.4 at black and white, 1 at grey
    fine = torch.randn(x.shape, generator=gen, device=x.device) * _u(gen, 0, 2) / 255
    return x + n * amount + fine


def real_degrade(
    clean: torch.Tensor, scale: int, gen: torch.Generator, camera: bool = False, grain: float = 0.0
) -> torch.Tensor:
    """What a real photo's pixels went through: blur, (down)sampling, camera noise or AWGN,
    sometimes noise added before a downscale, JPEG, 8-bit quantisation. In/out in [-1, 1].

    camera=True (configs with "camera": true) makes the noise the full camera pipeline of
    `camera.py` (mosaic, raw shot/read noise, demosaicing, tone curve), sometimes at twice the
    resolution and then downscaled as phones do, and JPEG at qualities 60-95 (the issue-14 recipe);
    False keeps the recipe earlier checkpoints were trained with, so their runs resume exactly.
    grain: the share of the camera-noise samples given `film_grain` instead (0: no draw for it, so
    runs without it resume exactly)."""
    from ..resample import downscale, upscale_bicubic
    from .camera import camera_pipeline

    out = []
    for i in range(clean.shape[0]):
        x = (clean[i : i + 1] + 1) / 2
        if _u(gen, 0, 1) < (0.7 if scale > 1 else 0.2):
            x = gaussian_blur(x, _u(gen, 0.3, 0.6 * scale + 0.4))
        pre = scale > 1 and _u(gen, 0, 1) < 0.25
        if scale > 1 and not pre:
            x = downscale(x, scale).clamp(0, 1)
        kind = _u(gen, 0, 1)
        if camera:
            if kind < 0.2:
                x = x + torch.randn(x.shape, generator=gen, device=x.device) * _u(gen, 1, 50) / 255
            elif kind < 0.9:
                if grain > 0 and _u(gen, 0, 1) < grain:
                    x = film_grain(x, gen)
                elif scale == 1 and _u(gen, 0, 1) < 0.3:  # recorded at 2x, downscaled by the phone
                    big = ((upscale_bicubic(x * 2 - 1, 2) + 1) / 2).clamp(0, 1)
                    x = downscale(camera_pipeline(big, gen), 2).clamp(0, 1)
                else:
                    x = camera_pipeline(x, gen)
        elif kind < 0.3:
            x = x + torch.randn(x.shape, generator=gen, device=x.device) * _u(gen, 1, 50) / 255
        elif kind < 0.9:
            x = camera_noise(x, gen)
        if pre:  # noise at sensor resolution, then downscaled: finer, correlated grain
            x = downscale(x.clamp(0, 1), scale)
        if _u(gen, 0, 1) < (0.75 if camera else 0.5):
            x = jpeg(x, int(_u(gen, 60, 95) if camera else _u(gen, 30, 95)))
        out.append(x.clamp(0, 1))
    return quantise(torch.cat(out) * 2 - 1)
