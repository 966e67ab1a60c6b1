"""Tiles merge back exactly for a pointwise model, and without visible seams for the real one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgdiff.device import Runtime
from imgdiff.hub import load
from imgdiff.io import ImageData
from imgdiff.pipelines.denoise import denoise_image
from imgdiff.tiling import count_tiles, pad_to_multiple, run_tiled


@pytest.mark.parametrize("tile,overlap", [(0, 0), (32, 8), (48, 16), (64, 0), (17, 5)])
def test_identity_model_reassembles_the_image(tile, overlap):
    x = torch.rand(1, 3, 70, 101)
    out = run_tiled(lambda t, c: t * 2 - 1, x, None, tile, overlap, multiple=16)
    assert out.shape == x.shape
    assert torch.allclose(out, x * 2 - 1, atol=1e-6)


def test_condition_is_sliced_with_the_tile():
    x, cond = torch.rand(1, 3, 80, 80), torch.rand(1, 3, 80, 80)
    out = run_tiled(lambda t, c: t + c, x, cond, 32, 8, multiple=16)
    assert torch.allclose(out, x + cond, atol=1e-6)


def test_padding_and_tile_count():
    x = torch.rand(1, 3, 5, 37)
    p, h, w = pad_to_multiple(x, 16)
    assert p.shape[-2:] == (16, 48) and (h, w) == (5, 37)
    assert count_tiles(100, 100, 0, 32, 16) == 1
    assert count_tiles(300, 100, 128, 32, 16) == 3


@pytest.mark.parametrize("h,w,tile", [(2500, 3760, 2048), (1100, 1100, 512)])
def test_tiles_share_the_work_evenly(h, w, tile):
    """Time stays linear in pixels: an image just over one tile is not computed as four full tiles."""
    shapes = []

    def fn(t, c):
        shapes.append(t.shape[-2:])
        return t

    x = torch.zeros(1, 1, h, w)
    assert torch.equal(run_tiled(fn, x, None, tile, 32, multiple=16), x)
    assert len(shapes) == count_tiles(h, w, tile, 32, 16)
    assert all(th <= tile and tw <= tile for th, tw in shapes)
    assert sum(th * tw for th, tw in shapes) < 1.25 * h * w  # fixed-size tiles: 1.78x and 1.95x


def test_tiled_denoise_matches_whole_image_without_seams(photo):
    model = load("denoise", "denoise", torch.device("cpu"))
    rng = np.random.default_rng(0)
    big = np.concatenate([photo, photo[:, ::-1]], axis=1)  # 48 x 128 ...
    big = np.concatenate([big, big[::-1], big], axis=0)  # ... 144 x 128, several tiles of 64
    noisy = np.clip(big / 255 + rng.normal(0, 25 / 255, big.shape), 0, 1).astype(np.float32)
    img = ImageData(pixels=noisy)
    whole = denoise_image(img, model, Runtime(torch.device("cpu"), torch.float32, 0, 0), 25).pixels
    tiled = denoise_image(img, model, Runtime(torch.device("cpu"), torch.float32, 128, 32), 25).pixels
    mse = float(np.mean((whole - tiled) ** 2))
    assert 10 * np.log10(1 / mse) >= 40
    # no seam: the worst column/row error is not much above the mean error
    col = np.abs(whole - tiled).mean(axis=(0, 2))
    assert col.max() < 8 * col.mean() + 2e-3
