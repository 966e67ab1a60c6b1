"""The Python API returns Pillow images and matches the CLI's pipelines."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import imgdiff


def test_api_roundtrip(photo):
    noisy = Image.fromarray(
        np.clip(photo + np.random.default_rng(0).normal(0, 20, photo.shape), 0, 255).astype(np.uint8)
    )
    clean = imgdiff.denoise(noisy, sigma=20)
    assert isinstance(clean, Image.Image) and clean.size == noisy.size
    err = lambda im: np.mean((np.asarray(im, float) - photo) ** 2)  # noqa: E731
    assert err(clean) < err(noisy) / 2
    sharper = imgdiff.denoise(noisy, sigma=20, detail=1.5)
    assert sharper.size == noisy.size and not np.array_equal(np.asarray(sharper), np.asarray(clean))
    for bad in (float("nan"), float("inf"), -1.0, 5.0):
        with pytest.raises(ValueError, match="detail"):
            imgdiff.denoise(noisy, sigma=20, detail=bad)
    assert imgdiff.upscale(Image.fromarray(photo), scale=2).size == (128, 96)
    tex = imgdiff.generate(size=(32, 48), steps=4, seed=1)
    assert tex.size == (32, 48)
    assert np.array_equal(np.asarray(tex), np.asarray(imgdiff.generate(size=(32, 48), steps=4, seed=1)))


def test_generate_in_a_style(monkeypatch, tmp_path, photo):
    monkeypatch.setenv("IMGDIFF_CACHE", str(tmp_path))
    style = Image.fromarray(photo)
    styled = imgdiff.generate(size=32, steps=2, seed=1, style=style, style_steps=2)
    assert styled.size == (32, 32) and len(list(tmp_path.rglob("*.safetensors"))) == 1  # learnt once, cached
    assert not np.array_equal(np.asarray(styled), np.asarray(imgdiff.generate(size=32, steps=2, seed=1)))


def test_version_import_is_light():
    import subprocess
    import sys

    code = "import sys, imgdiff; print(imgdiff.__version__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [imgdiff.__version__, "False"]


def test_an_8_bit_denoise_call_never_imports_opencv(tmp_path, noisy_png):
    """OpenCV's import is ~30 ms of every shell-loop call; only 16-bit/float files and the style,
    detail and upscale-alpha paths need it (issue 16's per-call overhead)."""
    import subprocess
    import sys

    code = (
        "import sys; from imgdiff.cli import app; sys.argv = ['imgdiff', 'denoise', sys.argv[1], '-o', sys.argv[2], "
        "'--sigma', '20', '-q']\ntry:\n    app(prog_name='imgdiff')\nexcept SystemExit as e:\n    assert not e.code\n"
        "print('cv2' in sys.modules)"
    )
    out = tmp_path / "o.png"
    r = subprocess.run([sys.executable, "-c", code, str(noisy_png), str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split() == ["False"], r.stderr
    assert out.exists()


def test_api_upscale_checks_the_checkpoints_scale(photo):
    import pytest

    from imgdiff.errors import UsageError

    with pytest.raises(UsageError, match="cannot do x2"):
        imgdiff.upscale(Image.fromarray(photo), scale=2, model="upscale-x4")
