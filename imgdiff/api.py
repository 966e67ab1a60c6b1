"""The Python API: the CLI's pipelines on Pillow images.

from imgdiff import denoise
clean = denoise(pil_image, sigma=15)
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image

from .defaults import DENOISE_ENSEMBLE, STYLE_STRENGTH
from .device import Runtime, make_runtime
from .hub import LoadedModel, check_restore_model, load
from .io import ImageData, from_pil, to_pil


@lru_cache(maxsize=8)
def _model(spec: str, task: str, device: str) -> LoadedModel:
    import torch

    return load(spec, task, torch.device(device))


def _setup(spec: str, task: str, device: str, tile: int | None, ensemble: int = 1) -> tuple[LoadedModel, Runtime]:
    rt = make_runtime(device, "auto", tile, ensemble=ensemble)
    return _model(spec, task, str(rt.device)), rt


def denoise(
    image: Image.Image,
    sigma: float | None = None,
    steps: int = 1,
    seed: int = 0,
    model: str = "denoise",
    device: str = "auto",
    tile: int | None = None,
    ensemble: int = DENOISE_ENSEMBLE,
    detail: float = 1.0,
) -> Image.Image:
    """Denoise white noise; sigma on the 0..255 scale, None to estimate it; ensemble and detail as
    the CLI's --ensemble and --detail."""
    from .detail import restore_detail
    from .pipelines.denoise import denoise_image, resolve_sigma

    m, rt = _setup(model, "denoise", device, tile, ensemble)
    img = from_pil(image)
    return to_pil(restore_detail(denoise_image(img, m, rt, resolve_sigma(img, sigma, m), steps, seed), detail))


def upscale(
    image: Image.Image,
    scale: int = 4,
    steps: int = 1,
    seed: int = 0,
    model: str | None = None,
    device: str = "auto",
    tile: int | None = None,
    ensemble: int = 1,
) -> Image.Image:
    from .pipelines.restore import restore_image

    m, rt = _setup(model or f"upscale-x{scale}", "restore", device, tile, ensemble)
    check_restore_model(m, scale, "bicubic")
    return to_pil(restore_image(from_pil(image), m, rt, steps, seed))


def stylize(
    image: Image.Image,
    style: Image.Image,
    strength: float = STYLE_STRENGTH,
    steps: int = 12,
    seed: int = 0,
    style_steps: int = 300,
    device: str = "auto",
    tile: int | None = None,
    keep_colors: bool = False,
) -> Image.Image:
    """Learns (or fetches from the cache) the style's model, then repaints the image with it."""
    from .pipelines.stylize import stylize_image
    from .train.style import style_model

    base, rt = _setup("generate", "generate", device, tile)
    smodel, _ = style_model(base, from_pil(style), rt.device, seed, style_steps)
    out = stylize_image(from_pil(image), smodel, rt, strength=strength, steps=steps, seed=seed, keep_colors=keep_colors)
    return to_pil(out)


def generate(
    size: int | tuple[int, int] = 64,
    seed: int = 0,
    steps: int = 24,
    tileable: bool = False,
    device: str = "auto",
    style: Image.Image | None = None,
    style_steps: int = 300,
) -> Image.Image:
    """A texture of size (width, height); multiples of 16; in the style of `style` if given (learnt
    once and cached, as the CLI's --style)."""
    from .pipelines.generate import generate_image
    from .train.style import style_model

    w, h = (size, size) if isinstance(size, int) else size
    m, rt = _setup("generate", "generate", device, None)
    if style is not None:
        m, _ = style_model(m, from_pil(style), rt.device, seed, style_steps)
    return to_pil(generate_image(m, rt, w, h, steps, seed, tileable))


__all__ = ["ImageData", "denoise", "generate", "stylize", "upscale"]
