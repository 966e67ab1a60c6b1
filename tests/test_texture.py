"""Texture statistics (issue 15): a style's patch distribution, and moving an image's fine structure to it."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from imgdiff.texture import decode_stats, encode_stats, lightness, match_texture, texture_stats
from tests.conftest import EXAMPLES


def seam_ratio(a: np.ndarray) -> float:
    """Mean step across the wrap-around seams over the mean step between neighbours inside."""
    inside = np.abs(np.diff(a, axis=1)).mean() + np.abs(np.diff(a, axis=0)).mean()
    return float((np.abs(a[:, 0] - a[:, -1]).mean() + np.abs(a[0] - a[-1]).mean()) / inside)


def stripes_and_grain(size: int = 96, seed: int = 0) -> np.ndarray:
    """A style with a texture at every scale: diagonal strokes and grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    v = 0.5 + 0.25 * np.sin((x + y) * 0.9) + 0.15 * rng.standard_normal((size, size))
    return np.clip(np.stack([v, v * 0.8, v * 0.5], -1), 0, 1).astype(np.float32)


def smooth_photo(size: int = 96) -> np.ndarray:
    y, x = np.mgrid[:size, :size] / size
    return np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * x * y], -1).astype(np.float32)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(texture_stats(a) - texture_stats(b)).mean())


def test_the_texture_moves_to_the_style_and_the_layout_stays():
    style, content = stripes_and_grain(), smooth_photo()
    out = match_texture(content, texture_stats(style), amount=1.5, iterations=10)
    assert out.shape == content.shape and out.dtype == np.float32
    assert distance(out, style) < 0.5 * distance(content, style)
    blur = lambda rgb: cv2.GaussianBlur(lightness(rgb), (0, 0), 4.0)  # noqa: E731
    assert np.abs(blur(out) - blur(content)).mean() < 2.0  # lightness 0..100: the layout is where it was
    lab_shift = np.abs(
        cv2.cvtColor(out, cv2.COLOR_RGB2Lab)[..., 1:] - cv2.cvtColor(content, cv2.COLOR_RGB2Lab)[..., 1:]
    )
    assert lab_shift.mean() < 1.0  # colours (a, b) are the colour step's business, not this one's


def test_more_amount_moves_further_and_none_moves_nothing():
    style, content = stripes_and_grain(), smooth_photo()
    stats = texture_stats(style)
    assert np.array_equal(match_texture(content, stats, amount=0.0), content)
    weak = distance(match_texture(content, stats, amount=0.3, iterations=4), style)
    strong = distance(match_texture(content, stats, amount=1.5, iterations=4), style)
    assert strong < weak < distance(content, style)


def test_grey_images_and_seeds():
    style = stripes_and_grain()[..., :1]
    grey = smooth_photo()[..., :1]
    stats = texture_stats(style)
    a = match_texture(grey, stats, seed=1, iterations=3)
    assert a.shape == grey.shape
    assert np.array_equal(a, match_texture(grey, stats, seed=1, iterations=3))
    assert not np.array_equal(a, match_texture(grey, stats, seed=2, iterations=3))


def test_small_images_and_styles_do_not_break():
    tiny = np.full((7, 9, 3), 0.5, np.float32)
    stats = texture_stats(tiny)
    assert np.isfinite(stats).all()
    out = match_texture(stripes_and_grain(12), stats, iterations=2)
    assert out.shape == (12, 12, 3) and np.isfinite(out).all()


def test_stats_survive_the_checkpoint_config_and_junk_is_refused():
    stats = texture_stats(stripes_and_grain())
    back = decode_stats(encode_stats(stats))
    assert back.shape == stats.shape and np.allclose(back, stats, atol=0.05, rtol=1e-3)
    assert decode_stats(None) is None
    assert decode_stats({"shape": list(stats.shape), "float16": "not base64!"}) is None
    assert decode_stats({"shape": [1, 2, 3], "float16": encode_stats(stats)["float16"]}) is None


def test_a_learnt_style_carries_its_texture_and_stylize_uses_it(runner, tmp_path, monkeypatch):
    """The saved style's config holds the texture statistics; stylize moves the output towards them
    (against the same run with the statistics withheld)."""
    from PIL import Image

    from imgdiff.hub import LoadedModel, load
    from tests.conftest import cli, tiny_checkpoint

    base = tiny_checkpoint(tmp_path / "tiny-generate.safetensors", "generate")
    style_png, content_png = tmp_path / "style.png", tmp_path / "c.png"
    style = stripes_and_grain(64)
    Image.fromarray((style * 255).round().astype(np.uint8)).save(style_png)
    Image.fromarray((smooth_photo(64) * 255).round().astype(np.uint8)).save(content_png)
    saved = tmp_path / "look.safetensors"
    args = ["stylize", str(content_png), "--model", str(base), "--style-steps", "2", "--steps", "2"]
    r = cli(runner, *args, "--style", str(style_png), "--save-style", str(saved), "-o", str(tmp_path / "with.png"))
    assert r.exit_code == 0, r.stderr
    palette, texture = load(str(saved), "generate", __import__("torch").device("cpu")).style_look
    style8 = np.asarray(Image.open(style_png)).astype(np.float32) / 255
    assert palette is not None and np.allclose(texture, texture_stats(style8), atol=0.1, rtol=1e-3)
    monkeypatch.setattr(LoadedModel, "style_look", property(lambda m: (m.config["style"]["colours"], None)))
    r = cli(runner, *args, "--style", str(saved), "-o", str(tmp_path / "without.png"))
    assert r.exit_code == 0, r.stderr

    def read(name):
        return np.asarray(Image.open(tmp_path / name).convert("RGB")).astype(np.float32) / 255

    assert distance(read("with.png"), style) < 0.7 * distance(read("without.png"), style)


def test_a_tileable_image_stays_seamless():
    """generate --tileable: the texture step runs across the edges, so tiling shows no seam."""
    y, x = np.mgrid[:64, :64]
    v = 0.5 + 0.2 * np.sin(2 * np.pi * x / 32) * np.cos(2 * np.pi * y / 16)
    tile = np.repeat(v[..., None], 3, axis=2).astype(np.float32)
    out = lightness(match_texture(tile, texture_stats(stripes_and_grain()), amount=1.5, iterations=10, wrap=True))
    assert 0.75 < seam_ratio(out) < 1.33  # a step across a seam is like any other (without wrap: 0.59)


def periodic_noise(size: int, seed: int) -> np.ndarray:
    """A smooth random image that tiles exactly (low-pass filtered white noise, periodic by the FFT)."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(size)
    low = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / 0.03**2)[..., None]
    v = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((size, size, 3)), axes=(0, 1)) * low, axes=(0, 1)))
    return np.clip(0.5 + 0.15 * v / v.std(), 0, 1).astype(np.float32)


def test_coarse_scales_wrap_too():
    """The half- and quarter-scale steps are upsampled across the seam as well (holding the edge value
    there made --tileable --style seams twice as sharp as the inside: 1.8 and 2.3 here before)."""
    painting = Image.open(EXAMPLES / "style.png").convert("RGB")
    stats = texture_stats(np.asarray(painting).astype(np.float32) / 255)
    ratios = [
        seam_ratio(lightness(match_texture(periodic_noise(128, seed), stats, seed=seed, wrap=True)))
        for seed in range(2)
    ]
    assert max(ratios) < 1.3, ratios
