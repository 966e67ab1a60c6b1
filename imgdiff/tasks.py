"""What each shipped model is: network shape, noise range and conditioning, per training task."""

from __future__ import annotations

from .models import ARCHITECTURE
from .models.unet import UNetConfig

SIGMA255_MAX_DENOISE = 75.0  # the denoiser is trained for sigma 0..75 on the 0..255 scale


def sigma_from_255(s: float) -> float:
    """0..255-scale noise level to model units (images live in [-1, 1])."""
    return s / 127.5


FILM_GRAIN_SHARE = 0.15  # denoise-real's camera-noise samples that are scanned-film grain instead

# conditional "restore" models: training task -> (scale, degradation the inputs are assumed to have)
RESTORE_TASKS = {
    "upscale-x2": (2, "bicubic"),
    "upscale-x4": (4, "bicubic"),
    "denoise-real": (1, "real"),
    "upscale-x4-real": (4, "real"),
}


def restore_model_name(scale: int, degradation: str) -> str:
    """The shipped model for a restore job (e.g. upscale x4 of real photos -> 'upscale-x4-real')."""
    base = "denoise" if scale == 1 else f"upscale-x{scale}"
    return base if degradation == "bicubic" else f"{base}-{degradation}"


def default_config(task: str) -> dict:
    """The config a fresh training run of `task` starts from; it is stored in the checkpoint."""
    if task == "denoise":
        net = UNetConfig(base=32, mults=[1, 2, 4, 8], blocks=2)
        extra = {
            "sigma_data": 0.5,
            "sigma_min": 0.002,
            "sigma_max": sigma_from_255(SIGMA255_MAX_DENOISE),
            # share of training inputs clipped and quantised like an 8-bit file (what the CLI reads and
            # steps=1 sees); the rest stay unclipped, like the sampler's intermediate states
            "clip_prob": 0.8,
        }
    elif task in RESTORE_TASKS:
        scale, degradation = RESTORE_TASKS[task]
        # x4 nets run at the low-resolution grid (4x4 unshuffle): 2.8x faster than 2x2 at the same width
        net = UNetConfig(base=40, mults=[1, 2, 4, 8], blocks=2, cond_channels=3, unshuffle=4 if scale == 4 else 2)
        # the network refines bicubic(degraded): it diffuses the residual clean - bicubic(degraded), std ~0.1
        extra = {
            "sigma_data": 0.1,
            "sigma_min": 0.002,
            "sigma_max": 20.0,
            "scale": scale,
            "residual": True,
            "degradation": degradation,
            # real inputs: the camera pipeline of train/camera.py (configs without the key resume as they ran)
            **({"camera": True} if degradation == "real" else {}),
            # denoise-real: a share of the camera-noise samples is scanned-film grain instead (issue 14)
            **({"film_grain": FILM_GRAIN_SHARE} if degradation == "real" and scale == 1 else {}),
        }
        return {"architecture": ARCHITECTURE, "task": "restore", "net": net.to_dict(), **extra}
    elif task == "generate":
        net = UNetConfig(base=32, mults=[1, 2, 4, 8], blocks=2)
        extra = {
            "sigma_data": 0.5,
            "sigma_min": 0.002,
            "sigma_max": 80.0,
            "size": 64,
            "zoom": [0.15, 0.6],
            "val_samples": 8,
        }
    else:
        raise ValueError(f"unknown task {task!r}")
    return {"architecture": ARCHITECTURE, "task": task.split("-")[0], "net": net.to_dict(), **extra}


def crop_zoom(cfg: dict) -> tuple[float, float]:
    """The crop zoom range a checkpoint learnt from; configs from before the key ran as generate
    0.15-0.6, every other task 1 (no zoom)."""
    lo, hi = cfg.get("zoom", (0.15, 0.6) if cfg["task"] == "generate" else (1.0, 1.0))
    return float(lo), float(hi)
