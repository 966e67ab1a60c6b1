"""Networks, and building a denoiser from a checkpoint config."""

from __future__ import annotations

from ..diffusion.precond import Denoiser
from .unet import UNet, UNetConfig

ARCHITECTURE = "unet-half"


def build_denoiser(config: dict) -> Denoiser:
    if config.get("architecture") != ARCHITECTURE:
        raise ValueError(f"unknown architecture {config.get('architecture')!r}")
    return Denoiser(UNet(UNetConfig.from_dict(config["net"])), sigma_data=float(config["sigma_data"]))


__all__ = ["ARCHITECTURE", "Denoiser", "UNet", "UNetConfig", "build_denoiser"]
