"""Style transfer by SDEdit with a style-specific diffusion model (train/style.py learns it).

The content is noised to the strength's sigma and denoised by the style's model, keeping layout
and taking the style's textures; its colours move to the style's palette per tone first."""

from __future__ import annotations

from ..colour import keep_chroma, transfer_colour
from ..device import Runtime
from ..diffusion.samplers import sample_ancestral
from ..diffusion.schedules import karras_sigmas, sigma_from_strength
from ..hub import LoadedModel
from ..io import ImageData
from .common import Progress, TiledDenoiser, from_tensor, to_tensor, whole_image_noise

STRENGTH_SIGMAS = (0.02, 80.0)  # strength 0 -> 0.02 (nearly untouched), 1 -> pure noise


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
