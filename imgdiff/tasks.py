"""What each shipped model is: network shape, noise range and conditioning, per training task."""

from __future__ import annotations

from .models import ARCHITECTURE
from .models.unet import UNetConfig

SIGMA255_MAX_DENOISE = 75.0  # the denoiser is trained for sigma 0..75 on the 0..255 scale


def sigma_from_255(s: float) -> float:
    """0..255-scale noise level to model units (images live in [-1, 1])."""
    return s / 127.5


def default_config(task: str) -> dict:
    """The config a fresh training run of `task` starts from; it is stored in the checkpoint."""
    if task == "denoise":
        net = UNetConfig(base=32, mults=[1, 2, 4, 8], blocks=2)
        extra = {"sigma_data": 0.5, "sigma_min": 0.002, "sigma_max": sigma_from_255(SIGMA255_MAX_DENOISE)}
    elif task in ("upscale-x2", "upscale-x4"):
        net = UNetConfig(base=40, mults=[1, 2, 4, 8], blocks=2, cond_channels=3)
        # the network refines bicubic: it diffuses the residual HR - bicubic(LR), whose std is ~0.1
        extra = {"sigma_data": 0.1, "sigma_min": 0.002, "sigma_max": 20.0, "scale": int(task[-1]), "residual": True}
    elif task == "generate":
        net = UNetConfig(base=32, mults=[1, 2, 4, 8], blocks=2)
        extra = {"sigma_data": 0.5, "sigma_min": 0.002, "sigma_max": 80.0, "size": 64}
    else:
        raise ValueError(f"unknown task {task!r}")
    return {"architecture": ARCHITECTURE, "task": task.split("-")[0], "net": net.to_dict(), **extra}


TRAIN_TASKS = ("denoise", "upscale-x2", "upscale-x4", "generate")
