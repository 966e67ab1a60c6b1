"""A camera's processing chain run backwards and forwards, to make realistic noisy photos for training.

Brooks et al., "Unprocessing images for learned raw denoising" (CVPR 2019): an sRGB image is taken back
to linear raw sensor values (inverse tone curve, inverse gamma, inverse colour correction with a random
camera matrix, inverse white balance protecting highlights, Bayer mosaic); shot and read noise are added
there, with Brooks' joint distribution of the two over the ISO range of phones and cameras; the chain
then runs forwards (white balance, demosaicing, colour correction, gamma, tone curve). What we take
from them: the four camera matrices, the gain and noise-level distributions, the smoothstep tone curve
and the highlight-safe gain inversion. What we add (after BSRGAN, Zhang et al. ICCV 2021, and
Real-ESRGAN, Wang et al. 2021): a choice of demosaicing (bilinear as Brooks, or OpenCV's edge-aware
one), sometimes processing at twice the resolution and downscaling afterwards as phones do, and JPEG.

Tensors are (1, 3, H, W) floats in [0, 1]; H and W even.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch.nn import functional as F

# Brooks et al.'s XYZ -> camera matrices (from four cameras), mixed at random per image
XYZ2CAMS = torch.tensor(
    [
        [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
        [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
        [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
        [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]],
    ]
)
RGB2XYZ = torch.tensor(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
SHOT_RANGE = (1e-4, 1.2e-2)  # Brooks: log-uniform shot-noise gain; read noise follows it (below)


def _u(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=gen, device=gen.device))


def random_rgb2cam(gen: torch.Generator) -> torch.Tensor:
    w = torch.rand(4, generator=gen, device=gen.device).cpu() + 1e-3
    xyz2cam = (w[:, None, None] * XYZ2CAMS).sum(0) / w.sum()
    rgb2cam = xyz2cam @ RGB2XYZ
    return rgb2cam / rgb2cam.sum(dim=-1, keepdim=True)  # rows sum to 1: white stays white


def random_gains(gen: torch.Generator) -> tuple[float, float, float]:
    """(brightness, red, blue) white-balance gains, Brooks' distributions."""
    rgb = 1.0 / max(0.5, 0.8 + 0.1 * float(torch.randn(1, generator=gen, device=gen.device)))
    return rgb, _u(gen, 1.9, 2.4), _u(gen, 1.5, 1.9)


def random_noise_levels(gen: torch.Generator) -> tuple[float, float]:
    """(shot, read): variance = shot * signal + read, in linear raw units (Brooks' fit over cameras)."""
    log_shot = _u(gen, math.log(SHOT_RANGE[0]), math.log(SHOT_RANGE[1]))
    log_read = 2.18 * log_shot + 1.20 + 0.26 * float(torch.randn(1, generator=gen, device=gen.device))
    return math.exp(log_shot), math.exp(log_read)


def inverse_smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return 0.5 - torch.sin(torch.asin(1 - 2 * x) / 3)


def smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return 3 * x**2 - 2 * x**3


def apply_ccm(x: torch.Tensor, ccm: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", ccm.to(x.device, x.dtype), x)


def safe_invert_gains(x: torch.Tensor, rgb: float, red: float, blue: float) -> torch.Tensor:
    """Divide out white balance, but not in near-white areas, which would otherwise clip in raw."""
    gains = torch.tensor([1 / red, 1.0, 1 / blue], device=x.device, dtype=x.dtype) / rgb
    grey = x.mean(dim=1, keepdim=True)
    mask = ((grey - 0.9).clamp_min(0) / 0.1) ** 2
    safe = torch.maximum(mask + (1 - mask) * gains[None, :, None, None], gains[None, :, None, None])
    return x * safe


def mosaic(x: torch.Tensor) -> torch.Tensor:
    """RGGB Bayer samples as one (B, 1, H, W) plane."""
    m = torch.zeros_like(x[:, :1])
    m[:, 0, 0::2, 0::2] = x[:, 0, 0::2, 0::2]
    m[:, 0, 0::2, 1::2] = x[:, 1, 0::2, 1::2]
    m[:, 0, 1::2, 0::2] = x[:, 1, 1::2, 0::2]
    m[:, 0, 1::2, 1::2] = x[:, 2, 1::2, 1::2]
    return m


def demosaic_bilinear(m: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of an RGGB plane (what Brooks et al. used)."""
    b, _, h, w = m.shape
    masks = torch.zeros(3, h, w, device=m.device, dtype=m.dtype)
    masks[0, 0::2, 0::2] = 1
    masks[1, 0::2, 1::2] = 1
    masks[1, 1::2, 0::2] = 1
    masks[2, 1::2, 1::2] = 1
    k_rb = torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], device=m.device, dtype=m.dtype)
    k_g = torch.tensor([[0.0, 0.25, 0.0], [0.25, 1.0, 0.25], [0.0, 0.25, 0.0]], device=m.device, dtype=m.dtype)
    sparse = F.pad(m * masks[None], (1, 1, 1, 1), mode="reflect")
    kernels = torch.stack([k_rb, k_g, k_rb])[:, None]
    return F.conv2d(sparse, kernels, groups=3)


def demosaic_edge_aware(m: torch.Tensor) -> torch.Tensor:
    """OpenCV's edge-aware demosaicing (16-bit), closer to what camera firmware does."""
    out = []
    for plane in m:
        raw = np.round(plane[0].clamp(0, 1).cpu().numpy() * 65535).astype(np.uint16)
        rgb = cv2.cvtColor(raw, cv2.COLOR_BayerBG2RGB_EA)  # OpenCV names RGGB "BG" (its 2nd row, shifted)
        out.append(torch.from_numpy(rgb.astype(np.float32) / 65535).permute(2, 0, 1))
    return torch.stack(out).to(m.device, m.dtype)


def camera_pipeline(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """A clean sRGB image as a camera would have recorded it: noise added in raw, then processed.

    `strength` scales both noise variances (1 = Brooks' range; used to widen it towards dim light)."""
    rgb2cam = random_rgb2cam(gen)
    cam2rgb = torch.linalg.inv(rgb2cam)
    rgb_gain, red, blue = random_gains(gen)
    lin = inverse_smoothstep(x).clamp_min(1e-8) ** 2.2
    raw = safe_invert_gains(apply_ccm(lin, rgb2cam), rgb_gain, red, blue).clamp(0, 1)
    bayer = mosaic(raw)
    shot, read = random_noise_levels(gen)
    var = (shot * bayer + read) * strength
    noisy = bayer + torch.randn(bayer.shape, generator=gen, device=x.device) * var.clamp_min(0).sqrt()
    gains = torch.tensor([red, 1.0, blue], device=x.device, dtype=x.dtype) * rgb_gain
    bayer_wb = (noisy.clamp(0, 1) * mosaic(gains[None, :, None, None].expand_as(x))).clamp(0, 1)
    demosaiced = demosaic_bilinear(bayer_wb) if _u(gen, 0, 1) < 0.5 else demosaic_edge_aware(bayer_wb)
    srgb = apply_ccm(demosaiced.clamp(0, 1), cam2rgb).clamp(0, 1).clamp_min(1e-8) ** (1 / 2.2)
    return smoothstep(srgb)
