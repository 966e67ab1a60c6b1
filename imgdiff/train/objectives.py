"""Per-task training objective: turn clean crops into (network input, sigma, condition, target).

All targets are the clean signal x0 (the EDM denoiser output), so one trainer serves every task.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext

import torch

from ..diffusion.precond import Denoiser, edm_loss_weight
from ..resample import downscale, upscale_bicubic
from ..tasks import sigma_from_255
from .degrade import add_gaussian, quantise, real_degrade


def _log_uniform(n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    u = torch.rand(n, generator=gen, device=device)
    return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def degraded_input(cfg: dict, clean: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """What the restore model is given: the clean crops degraded (and downscaled) as the task says."""
    s = int(cfg["scale"])
    if cfg.get("degradation", "bicubic") == "real":
        return real_degrade(clean, s, gen, camera=bool(cfg.get("camera", False)))
    return quantise(downscale(clean, s))


def degraded_condition(cfg: dict, clean: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The network's condition: the degraded image, bicubic-upsampled back to the clean grid."""
    return upscale_bicubic(degraded_input(cfg, clean, gen), int(cfg["scale"]))


def make_batch(cfg: dict, clean: torch.Tensor, gen: torch.Generator) -> tuple:
    """Returns (x, sigma, cond, x0): network input at noise level sigma, condition, clean target."""
    n, dev = clean.shape[0], clean.device
    task = cfg["task"]
    if task == "denoise":
        # uniform on the 0..255 scale as FFDNet does; a tenth at low noise where photos often are
        s255 = torch.rand(n, generator=gen, device=dev) * 75.0
        low = torch.rand(n, generator=gen, device=dev) < 0.1
        s255 = torch.where(low, s255 / 7.5, s255).clamp_min(0.25)
        sigma = sigma_from_255(1.0) * s255
        return add_gaussian(clean, sigma, gen, cfg.get("clip_prob", 0.5)), sigma, None, clean
    if task == "restore":
        cond = degraded_condition(cfg, clean, gen)
        x0 = clean - cond
        sigma = _log_uniform(n, cfg["sigma_min"], cfg["sigma_max"], gen, dev)
        terminal = torch.rand(n, generator=gen, device=dev) < 0.5  # half the batch trains the PSNR mode
        sigma = torch.where(terminal, torch.full_like(sigma, cfg["sigma_max"]), sigma)
        x = x0 + torch.randn(x0.shape, generator=gen, device=dev) * sigma[:, None, None, None]
        return x, sigma, cond, x0
    if task == "generate":
        sigma = torch.exp(-1.2 + 1.2 * torch.randn(n, generator=gen, device=dev))
        x = clean + torch.randn(clean.shape, generator=gen, device=dev) * sigma[:, None, None, None]
        return x, sigma, None, clean
    raise ValueError(f"unknown task {task!r}")


def loss_fn(cfg: dict, model: Denoiser, batch: tuple) -> torch.Tensor:
    """L1 for the restoration tasks (better PSNR per CPU-hour than L2); EDM-weighted L2 for generate."""
    x, sigma, cond, x0 = batch
    out = model(x, sigma, cond)
    if cfg["task"] == "generate":
        w = edm_loss_weight(sigma, model.sigma_data)[:, None, None, None]
        return (w * (out - x0) ** 2).mean()
    return (out - x0).abs().mean()


def train_step(
    cfg: dict,
    model: Denoiser,
    optim: torch.optim.Optimizer,
    clean: torch.Tensor,
    gen: torch.Generator,
    clip: float | None = None,
    autocast: AbstractContextManager | None = None,
) -> torch.Tensor:
    """One optimiser step of the task's objective on a batch of clean crops; returns the loss."""
    batch = make_batch(cfg, clean, gen)
    with autocast or nullcontext():
        loss = loss_fn(cfg, model, batch)
    optim.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optim.step()
    return loss.detach()
