"""The camera pipeline of training (issue 14) and the default's choice between white and camera noise."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from imgdiff.noise import COARSE_MIN_SIDE, COARSE_RATIO, CORRELATED_RATIO, read_noise
from imgdiff.tasks import default_config
from imgdiff.train import camera
from imgdiff.train.degrade import film_grain, jpeg, real_degrade
from tests.conftest import EXAMPLES, cli


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    """A 256x256 crop of the shipped example photo, uint8 RGB."""
    return np.asarray(Image.open(EXAMPLES / "clean.png").convert("RGB"))[:256, :256].copy()


def as_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255


def psnr(a, b) -> float:
    return float(10 * np.log10(255**2 / np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2)))


def test_mosaic_and_bilinear_demosaic_recover_a_smooth_image():
    x = torch.linspace(0, 1, 64)[None, None, None, :].expand(1, 3, 64, 64).clone()
    x[:, 1] *= 0.5
    back = camera.demosaic_bilinear(camera.mosaic(x))
    assert (back - x)[..., 2:-2, 2:-2].abs().max() < 1e-5


def test_without_noise_the_round_trip_keeps_the_colours(clean, monkeypatch):
    monkeypatch.setattr(camera, "random_noise_levels", lambda gen: (0.0, 0.0))
    g = torch.Generator().manual_seed(0)
    for _ in range(4):  # both demosaicing methods, several cameras and gains
        out = (camera.camera_pipeline(as_tensor(clean), g)[0].permute(1, 2, 0).numpy() * 255).round()
        assert psnr(out, clean) > 23  # only demosaicing error remains (edges of a textured photo)
        assert np.abs(out.mean((0, 1)) - clean.mean((0, 1))).max() < 2.5  # no colour shift


def test_noise_is_signal_dependent_and_spatially_correlated(monkeypatch):
    monkeypatch.setattr(camera, "random_noise_levels", lambda gen: (4e-3, 1e-5))
    monkeypatch.setattr(camera, "random_gains", lambda gen: (1.0, 1.0, 1.0))
    monkeypatch.setattr(camera, "random_rgb2cam", lambda gen: torch.eye(3))
    monkeypatch.setattr(camera, "demosaic_edge_aware", camera.demosaic_bilinear)
    g = torch.Generator().manual_seed(1)
    flat = torch.cat([torch.full((1, 3, 96, 96), 0.03), torch.full((1, 3, 96, 96), 0.5)], dim=3)
    noise = camera.camera_pipeline(flat, g) - camera.camera_pipeline(flat, g)  # two draws of the same scene
    dark, bright = float(noise[..., 4:-4, 4:92].std()), float(noise[..., 4:-4, 100:188].std())
    assert 2 / 255 < min(dark, bright) and abs(dark - bright) > 0.2 * max(dark, bright)  # AWGN: equal
    # demosaicing spreads each raw sample's noise over its neighbours: adjacent pixels correlate
    n = noise[0, 0, 4:-4, 4:92]
    assert float((n[:, 1:] * n[:, :-1]).mean() / (n**2).mean()) > 0.2


def awgn(a: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).round().astype(np.uint8)


def recorded(a: np.ndarray, seed: int, shot: float = 4e-3, quality: int | None = None) -> np.ndarray:
    """The training camera's shot of a, JPEG-compressed at that quality if one is given."""
    g = torch.Generator().manual_seed(seed)
    levels = camera.random_noise_levels
    camera.random_noise_levels = lambda gen: (shot, shot**2)
    try:
        x = camera.camera_pipeline(as_tensor(a), g)
        x = x if quality is None else jpeg(x, quality)
        return (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    finally:
        camera.random_noise_levels = levels


def test_film_grain_is_coarse_strongest_in_the_mid_tones_and_only_where_configured():
    grey = torch.cat([torch.full((1, 3, 64, 64), 0.5), torch.full((1, 3, 64, 64), 0.97)], dim=3)
    grain = film_grain(grey, torch.Generator().manual_seed(3)) - grey
    mid, light = float(grain[..., 8:-8, 8:56].std()), float(grain[..., 8:-8, 72:120].std())
    assert 1 / 255 < light < 0.8 * mid  # the intensity scaling: 0.4 at white, 1 at grey
    # blurred over 0.7-3 px: pixels two apart still correlate, which demosaicing's noise barely does
    n = grain[0, 0, 8:-8, 8:56]
    assert float((n[:, 2:] * n[:, :-2]).mean() / (n**2).mean()) > 0.2
    # only denoise-real's config asks for it; without the key the degradation draws as before
    assert default_config("denoise-real")["film_grain"] > 0 and "film_grain" not in default_config("upscale-x4-real")
    clean = torch.zeros(1, 3, 32, 32)
    plain = [real_degrade(clean, 1, torch.Generator().manual_seed(s), camera=True) for s in range(4)]
    again = [real_degrade(clean, 1, torch.Generator().manual_seed(s), camera=True, grain=0.0) for s in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(plain, again, strict=True))


@pytest.mark.parametrize("sigma", [5, 15, 40])
def test_white_noise_is_read_as_white_with_its_level(clean, sigma):
    r = read_noise(awgn(clean, sigma).astype(np.float32) / 255)
    assert r.kind == "white" and abs(r.sigma - sigma) < 2.5, r


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_camera_noise_is_read_as_camera(clean, seed):
    r = read_noise(recorded(clean, seed).astype(np.float32) / 255)
    assert r.kind == "camera", r


def test_camera_noise_hidden_by_jpeg_is_faint_and_goes_to_the_blind_model(clean):
    # a 27 dB camera shot whose grain JPEG smoothed away: the estimate sees almost nothing, and the
    # sigma-conditioned model would leave the noise in place
    noisy = recorded(clean, 2, shot=5e-4, quality=70)
    assert psnr(noisy, clean) < 28
    r = read_noise(noisy.astype(np.float32) / 255)
    assert r.kind == "faint" and r.sigma < 0.5 and r.blind, r
    assert not read_noise(awgn(clean, 5).astype(np.float32) / 255).blind


def smooth_scene() -> np.ndarray:
    """768x512 of smooth colour ramps: no texture for the noise estimates to mistake for noise."""
    y, x = np.mgrid[0:512, 0:768] / 512.0
    return np.stack([60 + 80 * x, 128 + 60 * np.sin(3 * y + 2 * x), 90 + 80 * np.cos(4 * x * y)], -1)


def film_scan() -> np.ndarray:
    """smooth_scene as scanned film: grain blurred over 2.5 px (std 6) under white noise of sigma 1."""
    grain = cv2.GaussianBlur(np.random.default_rng(0).normal(0, 1, (512, 768, 3)), (0, 0), 2.5)
    return awgn(smooth_scene() + grain * (6 / grain.std()), 1)


def test_coarse_grain_under_fine_noise_goes_to_the_blind_model():
    # scanned film: grain blurred over ~2.5 px under a little fine noise. At full resolution and 2x2
    # it looks like white noise of sigma ~1 (the Gaussian model would leave the grain); 4x4 shows it
    smooth = smooth_scene()
    film = film_scan().astype(np.float32) / 255
    r = read_noise(film)
    assert r.kind == "grain" and r.blind and r.ratio < CORRELATED_RATIO and r.coarse_ratio > COARSE_RATIO, r
    # too small an image for the 4x4 test (texture leaks into it there): not read, white as before
    small = read_noise(film[: COARSE_MIN_SIDE // 2, : COARSE_MIN_SIDE // 2])
    assert small.kind == "white" and small.coarse is None, small
    for sigma in (1, 2, 3):
        white = read_noise(awgn(smooth, sigma, seed=sigma).astype(np.float32) / 255)
        assert white.kind == "white" and white.coarse_ratio < 2, white


def test_default_denoise_picks_the_model_for_the_noise(runner, tmp_path, clean):
    (tmp_path / "white.png").write_bytes(b"")
    Image.fromarray(awgn(clean, 20)).save(tmp_path / "white.png")
    Image.fromarray(recorded(clean, 0)).save(tmp_path / "camera.png")
    Image.fromarray(recorded(clean, 2, shot=5e-4, quality=70)).save(tmp_path / "faint.png")
    Image.fromarray(film_scan()).save(tmp_path / "film.png")
    r = cli(runner, "denoise", str(tmp_path), "-o", str(tmp_path / "out"), "--json", "--ensemble", "1")
    assert r.exit_code == 0, r.stderr
    got = {json.loads(line)["input"].rsplit("/", 1)[1]: json.loads(line) for line in r.stdout.splitlines()}
    assert got["white.png"]["mode"] == "gaussian" and abs(got["white.png"]["sigma"] - 20) < 3
    assert got["camera.png"]["mode"] == "real" and got["camera.png"]["noise"] == "camera"
    assert got["faint.png"]["mode"] == "real" and got["faint.png"]["noise"] == "faint"
    # film grain goes to the blind model too, without the camera-noise detail gain (it would sharpen the grain)
    film = got["film.png"]
    assert film["mode"] == "real" and film["noise"] == "grain" and film["detail"] == 1, film
    assert got["camera.png"]["detail"] > 1
    meta = json.loads(Image.open(tmp_path / "out" / "camera.png").text["imgdiff"])
    assert meta["mode"] == "real" and meta["mode_asked"] == "auto"
    # --sigma keeps meaning white noise of that level; --mode stays an override
    r = cli(runner, "denoise", str(tmp_path / "camera.png"), "-o", str(tmp_path / "g.png"), "--sigma", "10", "--json")
    assert json.loads(r.stdout)["mode"] == "gaussian"
    r = cli(runner, "denoise", str(tmp_path / "white.png"), "-o", str(tmp_path / "r.png"), "--mode", "real", "--json")
    assert json.loads(r.stdout)["mode"] == "real"
