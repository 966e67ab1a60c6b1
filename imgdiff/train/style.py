"""A style's own diffusion model: the generic texture model fine-tuned on the style image.

A few hundred steps of the generic objective on crops of the style image make the model's learnt
distribution "images like this style" (pipelines/stylize.py then samples from it). The weights are
cached by the hash of (style pixels, base model, recipe)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..cache import cache_root
from ..checkpoint import save_checkpoint
from ..colour import colour_stats
from ..errors import ImgdiffError
from ..hub import LoadedModel, load
from ..io import ImageData, to_u8, write_atomic
from ..texture import encode_stats, texture_stats
from .data import ImageBank
from .fit import Fitter, Recipe, trainable_copy

RECIPE = {"steps": 300, "batch": 8, "lr": 2e-4, "zoom": [0.25, 1.0]}  # steps: --style-steps
LOOK_VERSION = 2  # what a learnt style stores besides its weights (2: palette and texture statistics)


def style_recipe(recipe: dict) -> Recipe:
    """A short fine-tune: constant learning rate, no EMA, no clipping, AdamW without decay."""
    return Recipe(
        lr=recipe["lr"], weight_decay=0.0, betas=(0.9, 0.999), ema=None, warmup=1, decay_fraction=0.0, clip=None
    )


def cache_dir() -> Path:
    return cache_root() / "styles"


def style_key(style: ImageData, base: LoadedModel, recipe: dict) -> str:
    h = hashlib.sha256()
    h.update(to_u8(style.pixels).tobytes())
    h.update(str(style.pixels.shape).encode())
    h.update(base.sha256.encode())
    h.update(json.dumps(recipe, sort_keys=True).encode())
    h.update(f"look {LOOK_VERSION}".encode())  # a style cached before the texture statistics is learnt again
    return h.hexdigest()[:24]


def mirror_to(pixels: np.ndarray, size: int) -> np.ndarray:
    """A style image smaller than the model's crops, mirrored out to `size`: the texture repeats
    as in a tiled swatch, with no seams and no rescaling of its strokes."""
    h, w = pixels.shape[:2]
    if h >= size and w >= size:
        return pixels
    return np.pad(pixels, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="symmetric")


def finetune_style(
    base: LoadedModel, style: ImageData, recipe: dict, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> dict[str, torch.Tensor]:
    """A few hundred AdamW steps of the generic objective on crops of the style image (CPU-sized)."""
    size = int(base.config.get("size", 64))
    dev = next(base.denoiser.parameters()).device
    rgb = np.repeat(mirror_to(style.pixels, size), 3 // style.pixels.shape[2], axis=2)
    bank = ImageBank([torch.from_numpy(to_u8(rgb).transpose(2, 0, 1).copy()).to(dev)], min_side=size)
    fitter = Fitter(base.config, trainable_copy(base.denoiser, base.config, dev), style_recipe(recipe), seed)
    n = recipe["steps"]

    def after_step(step: int, loss: torch.Tensor, lr: float) -> None:
        if progress:
            progress(step, n)

    fitter.fit(lambda gen: bank.sample(recipe["batch"], size, gen, tuple(recipe["zoom"])), lambda i: i / n, after_step)
    trained = fitter.shipped
    return {k: v.detach().half().cpu() for k, v in trained.state_dict().items()}


def style_model(
    base: LoadedModel,
    style: ImageData,
    device: torch.device,
    seed: int = 0,
    steps: int = RECIPE["steps"],
    save_to: Path | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[LoadedModel, bool]:
    """The style's model, from the cache when possible. Returns (model, came_from_cache).

    The cache is a convenience: when it cannot be written (full disk, read-only home) the style is
    still used, from a temporary file, with a warning."""
    recipe = {**RECIPE, "steps": steps, "seed": seed}
    key = style_key(style, base, recipe)
    path = cache_dir() / f"{key}.safetensors"
    cached = path.is_file()
    with tempfile.TemporaryDirectory(prefix="imgdiff-style-") as scratch:
        if not cached:
            tensors = finetune_style(base, style, recipe, seed, progress)
            cfg = {k: v for k, v in base.config.items() if k not in ("training", "validation", "format")}
            cfg["style"] = {"key": key, "base_sha256": base.sha256, "recipe": recipe, **style_look(style)}
            try:
                save_checkpoint(path, tensors, cfg)
            except Exception as e:  # OSError, or safetensors' own error type for a failed write
                if warn:
                    warn(f"style cache {path.parent} not writable ({first_line(e)}); the style is not cached")
                path = Path(scratch) / f"{key}.safetensors"
                try:
                    save_checkpoint(path, tensors, cfg)
                except Exception as e2:
                    raise ImgdiffError(f"cannot store the learnt style anywhere ({first_line(e2)})") from None
        if save_to is not None:
            try:
                write_atomic(save_to, path.read_bytes(), overwrite=overwrite)
            except FileExistsError:
                raise ImgdiffError(f"{save_to} already exists (use --overwrite)") from None
            except OSError as e:
                raise ImgdiffError(f"cannot write {save_to}: {e.strerror or e}") from None
        return load(str(path), "generate", device), cached


def style_look(style: ImageData) -> dict:
    """What a style checkpoint carries besides its weights: the colour statistics (None for a grey
    style: it has no palette to give) and the texture statistics (texture.py)."""
    return {
        "colours": None if style.grey else colour_stats(style.pixels),
        "texture": encode_stats(texture_stats(style.pixels)),
    }


def first_line(e: BaseException) -> str:
    text = str(e).splitlines()[0][:120] if str(e) else ""
    return getattr(e, "strerror", None) or text or type(e).__name__
