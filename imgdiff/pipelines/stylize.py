"""Style transfer by SDEdit with a style-specific diffusion model (train/style.py learns it).

The content's colours move to the style's palette per tone first; it is then noised to a level
that keeps its layout and denoised by the style's model, which repaints its fine structure in the
style's manner; last, its lightness texture is moved to the style's patch statistics (texture.py),
which SDEdit alone reaches only from noise levels that dissolve the layout (issue 15)."""

from __future__ import annotations

from ..colour import keep_chroma, transfer_colour
from ..defaults import STYLE_STRENGTH
from ..device import Runtime
from ..diffusion.samplers import sample_ancestral
from ..diffusion.schedules import karras_sigmas, sigma_from_strength
from ..hub import LoadedModel
from ..io import ImageData
from ..texture import AMOUNT, match_texture
from .common import Progress, TiledDenoiser, from_tensor, to_tensor, whole_image_noise

STRENGTH_SIGMAS = (0.02, 80.0)  # SDEdit strength 0 -> 0.02 (nearly untouched), 1 -> pure noise
# At the default, SDEdit runs at 0.2's noise level and the texture step supplies the style's
# statistics: SDEdit at 0.45 alone dissolved edges (edge correlation 0.58 on the style benchmark's
# 8 photos x 2 styles) while its texture still missed the style's (texture ratio 0.84). With the
# texture step, SDEdit at 0.3 / 0.25 / 0.2 kept edges 0.78 / 0.81 / 0.83 at texture ratio ~0.40
# (TRAINING.md, "Style models"). Above the default the noise rises linearly to 1 (pure noise) at 1.
SDEDIT_AT_DEFAULT = 0.2


def stylize_image(
    content: ImageData,
    model: LoadedModel,
    rt: Runtime,
    *,
    strength: float = STYLE_STRENGTH,
    steps: int = 12,
    seed: int = 0,
    progress: Progress = None,
    keep_colors: bool = False,
) -> ImageData:
    """Colours first, then strokes: the content's colours are moved to the style's palette per tone
    (colour.transfer_colour, as much as the strength asks), SDEdit from there repaints texture with
    the style's model, the palette is matched once more (sampling drifts it) and the lightness takes
    the style's texture statistics. keep_colors puts the content's own colours back on the result's
    lightness instead. The palette and texture statistics are the style model's (LoadedModel.style_look);
    a model without them skips those steps."""
    palette, texture = model.style_look
    s0 = sigma_from_strength(sdedit_strength(strength), *STRENGTH_SIGMAS)
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
    if recolour:
        out = out.with_pixels(transfer_colour(out.pixels, palette, amount))
    elif keep_colors and not content.grey:
        out = out.with_pixels(keep_chroma(out.pixels, content.pixels))
    if texture is None:
        return out
    return out.with_pixels(match_texture(out.pixels, texture, texture_amount(strength), seed=seed))


def colour_amount(strength: float) -> float:
    """How far the colours move: all the way from strength 0.5, in proportion below it, so strength
    trades style for content smoothly from the content itself (0) to the style's palette."""
    return float(min(1.0, 2 * strength))


def sdedit_strength(strength: float) -> float:
    """The SDEdit noise level's strength: SDEDIT_AT_DEFAULT at the default, in proportion below it,
    rising linearly to 1 (pure noise) at 1."""
    if strength <= STYLE_STRENGTH:
        return strength * SDEDIT_AT_DEFAULT / STYLE_STRENGTH
    return SDEDIT_AT_DEFAULT + (strength - STYLE_STRENGTH) * (1 - SDEDIT_AT_DEFAULT) / (1 - STYLE_STRENGTH)


def texture_amount(strength: float) -> float:
    """How far the texture moves: in proportion to the strength up to the default, then all of it."""
    return AMOUNT * min(1.0, strength / STYLE_STRENGTH)
