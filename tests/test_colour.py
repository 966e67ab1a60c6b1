"""Colour statistics transfer (issue 15): stylize moves the palette first, or keeps the content's colours."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from imgdiff.colour import colour_stats, keep_chroma, to_lab, transfer_colour
from tests.conftest import EXAMPLES, cli, tiny_checkpoint


def load(name: str, side: int = 96) -> np.ndarray:
    return np.asarray(Image.open(EXAMPLES / name).convert("RGB").resize((side, side))).astype(np.float32) / 255


def test_transfer_takes_the_style_palette_per_tone():
    content, style = load("clean.png"), load("style.png")
    out = transfer_colour(content, colour_stats(style))
    lab_o, lab_s, lab_c = to_lab(out), to_lab(style), to_lab(content)
    # the mean colour moves from the content's to the style's
    assert (
        np.abs(lab_o.mean((0, 1)) - lab_s.mean((0, 1))).max()
        < 4
        < np.abs(lab_c.mean((0, 1)) - lab_s.mean((0, 1))).max()
    )
    # per tone: the darkest third of the output takes the style's shadow colours, the lightest its lights
    lo = lab_o[..., 0] <= np.quantile(lab_o[..., 0], 0.2)
    hi = lab_o[..., 0] >= np.quantile(lab_o[..., 0], 0.8)
    st = colour_stats(style)
    assert np.abs(lab_o[lo][:, 1:].mean(0) - np.asarray(st["mean"][0][1:])).max() < 8
    assert np.abs(lab_o[hi][:, 1:].mean(0) - np.asarray(st["mean"][-1][1:])).max() < 8
    # amount blends smoothly back to the content
    assert np.allclose(transfer_colour(content, colour_stats(style), amount=0.0), content, atol=1e-5)


def test_keep_chroma_keeps_the_content_colours():
    content, other = load("clean.png"), load("style.png")
    out = keep_chroma(other, content)
    a, c = to_lab(out), to_lab(content)
    assert np.abs(a[..., 0] - to_lab(other)[..., 0]).mean() < 2.5  # lightness (strokes) from the result
    # colour from the content (what is left is gamut clipping where the lightness changed a lot)
    assert np.abs(a[..., 1:] - c[..., 1:]).mean() < 0.3 * np.abs(to_lab(other)[..., 1:] - c[..., 1:]).mean()


def test_stylize_moves_the_palette_or_keeps_the_colours(runner, tmp_path):
    base = tiny_checkpoint(tmp_path / "tiny-generate.safetensors", "generate")
    content = tmp_path / "c.png"
    Image.fromarray((load("clean.png", 64) * 255).round().astype(np.uint8)).save(content)
    args = ["stylize", str(content), "--style", str(EXAMPLES / "style.png"), "--model", str(base)]
    args += ["--style-steps", "2", "--steps", "2", "--strength", "0.3"]
    assert cli(runner, *args, "-o", str(tmp_path / "styled.png")).exit_code == 0
    r = cli(runner, *args, "-o", str(tmp_path / "kept.png"), "--keep-colors")
    assert r.exit_code == 0, r.stderr
    style_ab = to_lab(load("style.png"))[..., 1:].mean((0, 1))
    content_ab = to_lab(load("clean.png", 64))[..., 1:].mean((0, 1))

    def ab(path):
        return to_lab(np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 255)[..., 1:].mean((0, 1))

    assert np.linalg.norm(ab(tmp_path / "styled.png") - style_ab) < np.linalg.norm(content_ab - style_ab) / 2
    assert np.linalg.norm(ab(tmp_path / "kept.png") - content_ab) < 3
    meta = json.loads(Image.open(tmp_path / "kept.png").text["imgdiff"])
    assert meta["keep_colors"] is True
