"""Per-task training objective: turn clean crops into (network input, sigma, condition, target).

All targets are the clean signal x0 (the EDM denoiser output), so one trainer serves every task.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from ..diffusion.precond import Denoiser, edm_loss_weight
from ..resample import downscale, upscale_bicubic
from ..tasks import SIGMA255_MAX_DENOISE, sigma_from_255
from .degrade import add_gaussian, quantise, real_degrade


def _log_uniform(n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    u = torch.rand(n, generator=gen, device=device)
    return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


TEXTURE_TILE = 32  # px: the side of the tiles amplitude_loss compares (named in the model card)


def amplitude_loss(out: torch.Tensor, target: torch.Tensor, patch: int = TEXTURE_TILE) -> torch.Tensor:
    """L1 between the Fourier amplitude spectra of `patch`-square tiles of two image batches.

    Phase-free, so it asks for the right amount of fine detail even where the pixel loss, unsure where
    the detail lies, averages it away (the texture a one-step camera denoiser smooths): Fuoli et al.,
    "Fourier space losses for efficient perceptual image super-resolution" (ICCV 2021); tiled as in
    Jiang et al.'s focal frequency loss (ICCV 2021), so the amount is asked for locally."""
    n, c, h, w = out.shape
    p = min(patch, h, w)
    rows, cols = h // p, w // p

    def spectrum(x: torch.Tensor) -> torch.Tensor:
        tiles = x[..., : rows * p, : cols * p].float().reshape(n, c, rows, p, cols, p).transpose(3, 4)
        return torch.fft.rfft2(tiles, norm="ortho").abs()

    return (spectrum(out) - spectrum(target)).abs().mean()


def degraded_input(cfg: dict, clean: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """What the restore model is given: the clean crops degraded (and downscaled) as the task says."""
    s = int(cfg["scale"])
    if cfg.get("degradation", "bicubic") == "real":
        return real_degrade(
            clean, s, gen, camera=bool(cfg.get("camera", False)), grain=float(cfg.get("film_grain", 0.0))
        )
    return quantise(downscale(clean, s))


def degraded_condition(cfg: dict, clean: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The network's condition: the degraded image, bicubic-upsampled back to the clean grid."""
    return upscale_bicubic(degraded_input(cfg, clean, gen), int(cfg["scale"]))


@dataclass(frozen=True)
class DenoiseObjective:
    """Non-blind AWGN denoising: sigma uniform on the 0..255 scale up to the model's range, as FFDNet
    draws it, a share `low_share` of it divided by `low_divisor` (photos are often barely noisy); L1
    on the clean image, plus `texture` x `amplitude_loss` where the run asks for it."""

    sigma255_max: float = SIGMA255_MAX_DENOISE
    low_share: float = 0.1
    low_divisor: float = 7.5
    sigma255_floor: float = 0.25

    def sigma(self, n: int, gen: torch.Generator, dev: torch.device) -> torch.Tensor:
        s255 = torch.rand(n, generator=gen, device=dev) * self.sigma255_max
        low = torch.rand(n, generator=gen, device=dev) < self.low_share
        return sigma_from_255(1.0) * torch.where(low, s255 / self.low_divisor, s255).clamp_min(self.sigma255_floor)

    def batch(self, cfg: dict, clean: torch.Tensor, gen: torch.Generator) -> tuple:
        sigma = self.sigma(clean.shape[0], gen, clean.device)
        return add_gaussian(clean, sigma, gen, cfg.get("clip_prob", 0.5)), sigma, None, clean

    def loss(self, model: Denoiser, batch: tuple, texture: float = 0.0) -> torch.Tensor:
        x, sigma, cond, x0 = batch
        pred = model(x, sigma, cond)
        loss = (pred - x0).abs().mean()
        if texture:
            base = 0 if cond is None else cond  # a restore model predicts the residual over its condition
            loss = loss + texture * amplitude_loss(base + pred, base + x0)
        return loss


@dataclass(frozen=True)
class RestoreObjective(DenoiseObjective):
    """Conditional restoration: the residual clean - bicubic(degraded) is diffused with sigma
    log-uniform in the model's range, half the batch at sigma_max (the one-step PSNR mode); L1."""

    terminal_share: float = 0.5

    def batch(self, cfg: dict, clean: torch.Tensor, gen: torch.Generator) -> tuple:
        n, dev = clean.shape[0], clean.device
        cond = degraded_condition(cfg, clean, gen)
        x0 = clean - cond
        sigma = _log_uniform(n, cfg["sigma_min"], cfg["sigma_max"], gen, dev)
        terminal = torch.rand(n, generator=gen, device=dev) < self.terminal_share
        sigma = torch.where(terminal, torch.full_like(sigma, cfg["sigma_max"]), sigma)
        x = x0 + torch.randn(x0.shape, generator=gen, device=dev) * sigma[:, None, None, None]
        return x, sigma, cond, x0


@dataclass(frozen=True)
class GenerateObjective:
    """Unconditional texture model: EDM's log-normal sigma (P_mean, P_std) and EDM-weighted L2."""

    p_mean: float = -1.2
    p_std: float = 1.2

    def batch(self, cfg: dict, clean: torch.Tensor, gen: torch.Generator) -> tuple:
        n, dev = clean.shape[0], clean.device
        sigma = torch.exp(self.p_mean + self.p_std * torch.randn(n, generator=gen, device=dev))
        x = clean + torch.randn(clean.shape, generator=gen, device=dev) * sigma[:, None, None, None]
        return x, sigma, None, clean

    def loss(self, model: Denoiser, batch: tuple, texture: float = 0.0) -> torch.Tensor:
        if texture:
            raise ValueError("generate learns a distribution; a texture loss is for restoration")
        x, sigma, cond, x0 = batch
        return (self.weight(sigma, model.sigma_data)[:, None, None, None] * (model(x, sigma, cond) - x0) ** 2).mean()

    @staticmethod
    def weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
        return edm_loss_weight(sigma, sigma_data)


OBJECTIVES = {"denoise": DenoiseObjective(), "restore": RestoreObjective(), "generate": GenerateObjective()}


def objective_for(cfg: dict):
    """The task's objective: its sigma distribution and loss weight, read by training and validation."""
    try:
        return OBJECTIVES[cfg["task"]]
    except KeyError:
        raise ValueError(f"unknown task {cfg['task']!r}") from None


def make_batch(cfg: dict, clean: torch.Tensor, gen: torch.Generator) -> tuple:
    """Returns (x, sigma, cond, x0): network input at noise level sigma, condition, clean target."""
    return objective_for(cfg).batch(cfg, clean, gen)


def loss_fn(cfg: dict, model: Denoiser, batch: tuple) -> torch.Tensor:
    """L1 for the restoration tasks (better PSNR per CPU-hour than L2), with the run's `texture_loss`
    weight of `amplitude_loss` if it set one; EDM-weighted L2 for generate."""
    return objective_for(cfg).loss(model, batch, float(cfg.get("texture_loss", 0.0)))


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
