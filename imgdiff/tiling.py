"""Run a per-pixel network over overlapping tiles and cross-fade them together.

The sampler never sees tiles: it calls a tiled denoiser on the whole image, so the fresh noise of
stochastic steps is drawn once for the whole image and every tile sees its own slice of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

TileFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad bottom/right so both sides divide by m (replicate when the image is too small)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def _spans(n: int, tile: int, overlap: int, multiple: int) -> list[tuple[int, int]]:
    """(start, end) of the fewest tiles of at most `tile` covering n with at least `overlap` shared.

    The tiles are equal (a multiple of `multiple`) and evenly spread: fixed-size tiles with the last
    one pushed against the border computed up to 1.8x the pixels for images just over one tile.
    """
    if n <= tile:
        return [(0, n)]
    k = math.ceil((n - overlap) / (tile - overlap))
    size = min(tile, math.ceil(math.ceil((n + (k - 1) * overlap) / k) / multiple) * multiple)
    return [(s, s + size) for s in (round(i * (n - size) / (k - 1)) for i in range(k))]


def _ramp(n: int, overlap: int, lo_edge: bool, hi_edge: bool, device: torch.device) -> torch.Tensor:
    """1-D weight: raised-cosine ramps over the overlap, except at the image border."""
    w = torch.ones(n, device=device)
    k = min(overlap, n // 2)
    if k > 0:
        r = 0.5 - 0.5 * torch.cos(torch.linspace(0, torch.pi, k + 2, device=device)[1:-1])
        if not lo_edge:
            w[:k] = r
        if not hi_edge:
            w[-k:] = r.flip(0)
    return w


def run_tiled(
    fn: TileFn,
    x: torch.Tensor,
    cond: torch.Tensor | None,
    tile: int,
    overlap: int,
    multiple: int,
    on_tile: Callable[[], None] | None = None,
) -> torch.Tensor:
    """fn over tiles of x (and cond), merged; tile <= 0 or a small image means one pass."""
    h, w = x.shape[-2:]
    grid = tile_grid(h, w, tile, overlap, multiple)
    if grid is None:
        xp, _, _ = pad_to_multiple(x, multiple)
        cp = None if cond is None else pad_to_multiple(cond, multiple)[0]
        out = fn(xp, cp)[..., :h, :w]
        if on_tile:
            on_tile()
        return out
    rows, cols, overlap = grid
    acc = None
    weight = torch.zeros(1, 1, h, w, device=x.device)
    for y0, y1 in rows:
        for x0, x1 in cols:
            xt = x[..., y0:y1, x0:x1]
            ct = None if cond is None else cond[..., y0:y1, x0:x1]
            xt, th, tw = pad_to_multiple(xt, multiple)
            if ct is not None:
                ct = pad_to_multiple(ct, multiple)[0]
            out = fn(xt, ct)[..., :th, :tw].float()
            wy = _ramp(th, overlap, y0 == 0, y1 == h, x.device)
            wx = _ramp(tw, overlap, x0 == 0, x1 == w, x.device)
            wt = (wy[:, None] * wx[None, :])[None, None]
            if acc is None:
                acc = torch.zeros(x.shape[0], out.shape[1], h, w, device=x.device)
            acc[..., y0:y1, x0:x1] += out * wt
            weight[..., y0:y1, x0:x1] += wt
            if on_tile:
                on_tile()
    return acc / weight.clamp_min(1e-8)


def tile_grid(
    h: int, w: int, tile: int, overlap: int, multiple: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int] | None:
    """The row spans, column spans and effective overlap run_tiled uses; None means one pass."""
    if tile <= 0 or (h <= tile and w <= tile):
        return None
    tile = max(multiple, tile // multiple * multiple)
    overlap = min(overlap, tile // 2)
    return _spans(h, tile, overlap, multiple), _spans(w, tile, overlap, multiple), overlap


def count_tiles(h: int, w: int, tile: int, overlap: int, multiple: int) -> int:
    grid = tile_grid(h, w, tile, overlap, multiple)
    return 1 if grid is None else len(grid[0]) * len(grid[1])
