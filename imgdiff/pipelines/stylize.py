"""Style transfer by SDEdit with a style-specific diffusion model.

The generic texture model is fine-tuned for a few hundred steps on crops of the style image, so
its learnt distribution becomes "images like this style"; the content is then noised to the
strength's sigma and denoised by that model, keeping layout and taking the style's colours and
textures. Fine-tuned weights are cached by the hash of (style pixels, base model, recipe)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import save_checkpoint
from ..colour import colour_stats, keep_chroma, transfer_colour
from ..device import Runtime
from ..diffusion.samplers import sample_ancestral
from ..diffusion.schedules import karras_sigmas, sigma_from_strength
from ..errors import ImgdiffError
from ..hub import LoadedModel, load
from ..io import ImageData, write_atomic
from ..train.data import ImageBank
from ..train.objectives import train_step
from .common import Progress, TiledDenoiser, from_tensor, to_tensor, whole_image_noise

RECIPE = {"steps": 300, "batch": 8, "lr": 2e-4, "zoom": [0.25, 1.0]}  # steps: --style-steps
STRENGTH_SIGMAS = (0.02, 80.0)  # strength 0 -> 0.02 (nearly untouched), 1 -> pure noise


def cache_dir() -> Path:
    base = os.environ.get("IMGDIFF_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "imgdiff"
    )
    return Path(base) / "styles"


def style_key(style: ImageData, base: LoadedModel, recipe: dict) -> str:
    h = hashlib.sha256()
    h.update(np.round(style.pixels * 255).astype(np.uint8).tobytes())
    h.update(str(style.pixels.shape).encode())
    h.update(base.sha256.encode())
    h.update(json.dumps(recipe, sort_keys=True).encode())
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
    model = base.denoiser
    dev = next(model.parameters()).device
    size = int(base.config.get("size", 64))
    img = torch.from_numpy(
        np.round(np.repeat(mirror_to(style.pixels, size), 3 // style.pixels.shape[2], axis=2) * 255)
        .astype(np.uint8)
        .transpose(2, 0, 1)
        .copy()
    ).to(dev)
    bank = ImageBank([img], min_side=size)
    cfg = base.config
    gen = torch.Generator().manual_seed(seed)
    ngen = torch.Generator(device=dev).manual_seed(seed + 1)
    trained = type(model)(type(model.net)(model.net.cfg), model.sigma_data).to(dev)
    trained.load_state_dict(model.state_dict())
    trained.train().requires_grad_(True)
    opt = torch.optim.AdamW(trained.parameters(), lr=recipe["lr"], weight_decay=0.0)
    n = recipe["steps"]
    for i in range(n):
        clean = bank.sample(recipe["batch"], size, gen, tuple(recipe["zoom"]))
        train_step(cfg, trained, opt, clean, ngen)
        if progress:
            progress(i + 1, n)
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
            cfg["style"] = {"key": key, "base_sha256": base.sha256, "recipe": recipe, "colours": style_palette(style)}
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


def style_palette(style: ImageData) -> dict | None:
    """The style image's colour statistics (None for a grey style: it has no palette to give)."""
    return None if style.grey else colour_stats(style.pixels)


def first_line(e: BaseException) -> str:
    text = str(e).splitlines()[0][:120] if str(e) else ""
    return getattr(e, "strerror", None) or text or type(e).__name__


def stylize_image(
    content: ImageData,
    model: LoadedModel,
    rt: Runtime,
    strength: float = 0.5,
    steps: int = 12,
    seed: int = 0,
    progress: Progress = None,
    palette: dict | None = None,
    keep_colors: bool = False,
) -> ImageData:
    """Colours first, then strokes: the content's colours are moved to the style's palette per tone
    (colour.transfer_colour, as much as the strength asks), SDEdit from there repaints texture with
    the style's model, and the palette is matched once more (sampling drifts it). keep_colors puts the
    content's own colours back on the result's lightness instead."""
    s0 = sigma_from_strength(strength, *STRENGTH_SIGMAS)
    if s0 <= 0:
        return content.with_pixels(content.pixels.copy())
    amount = colour_amount(strength)
    recolour = palette is not None and not keep_colors and not content.grey
    start = content.with_pixels(transfer_colour(content.pixels, palette, amount)) if recolour else content
    x0 = to_tensor(start, rt.device)
    noise = whole_image_noise(tuple(x0.shape), seed, rt.device)
    x = x0 + noise(-1) * s0
    sigmas = karras_sigmas(steps, min(model.config["sigma_min"], s0 / 2), s0)
    den = TiledDenoiser(model, rt, x0.shape[-2:], steps, progress=progress)
    out = from_tensor(sample_ancestral(den, x, sigmas, noise), content)
    if content.grey:
        return out
    if recolour:
        return out.with_pixels(transfer_colour(out.pixels, palette, amount))
    if keep_colors:
        return out.with_pixels(keep_chroma(out.pixels, content.pixels))
    return out


def colour_amount(strength: float) -> float:
    """How far the colours move: all the way from strength 0.5, in proportion below it, so strength
    trades style for content smoothly from the content itself (0) to the style's palette."""
    return float(min(1.0, 2 * strength))
