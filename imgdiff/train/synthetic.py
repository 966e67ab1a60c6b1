"""Synthetic training images: dead leaves, occluding disks with power-law radii.

Achddou et al. ("Synthetic images as a regularity prior for image restoration neural networks",
SSVM 2021) found denoisers trained on dead-leaves images close to ones trained on photographs: the
model is scale-invariant (radius density r^-3) and has the sharp occlusion edges natural images
have. Here it supplies what the corpus lacks: saturated colours and edges at every scale.
Colours are drawn from the pixels of training photographs (so the palette is natural) or, for a
share of the disks, uniformly in RGB.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def power_law_radii(rng: np.random.Generator, n: int, rmin: float, rmax: float, alpha: float = 3.0) -> np.ndarray:
    """n radii with density proportional to r^-alpha on [rmin, rmax], by the inverse CDF."""
    u = rng.random(n)
    a = 1.0 - alpha
    return (rmin**a + u * (rmax**a - rmin**a)) ** (1.0 / a)


def dead_leaves(
    rng: np.random.Generator,
    size: int = 512,
    palette: np.ndarray | None = None,
    uniform_share: float = 0.3,
    disks: int = 30000,
    rmin: float = 2.0,
    supersample: int = 2,
    blur_prob: float = 0.25,
) -> np.ndarray:
    """One (size, size, 3) uint8 dead-leaves image.

    Disks are painted back to front, so the last ones lie on top; at rmin 2 px the mean disk covers
    ~2π rmin² ln(rmax / rmin) ≈ 120 px², so `disks` covers a 512-px canvas ~14 times and no background
    shows (the first disk's colour fills it, as a floor). Painting at `supersample` x and area-averaging
    gives anti-aliased edges like a camera's; `blur_prob` of the images get a Gaussian defocus.
    palette: (N, 3) uint8 colours to draw from (None: uniform RGB only).
    """
    big = size * supersample
    radii = power_law_radii(rng, disks, rmin * supersample, big / 2)
    centres = rng.integers(-big // 8, big + big // 8, size=(disks, 2))
    uniform = rng.random(disks) < (uniform_share if palette is not None else 1.0)
    colours = rng.integers(0, 256, size=(disks, 3))
    if palette is not None:
        picked = palette[rng.integers(0, len(palette), size=disks)]
        colours = np.where(uniform[:, None], colours, picked)
    canvas = np.empty((big, big, 3), np.uint8)
    canvas[:] = colours[0]
    for (x, y), r, c in zip(centres, radii, colours, strict=True):
        cv2.circle(canvas, (int(x), int(y)), max(1, int(round(r))), tuple(int(v) for v in c), thickness=-1)
    image = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < blur_prob:
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=float(rng.uniform(0.5, 2.0)))
    return image


def photo_palette(paths: list[Path], rng: np.random.Generator, per_image: int = 4000) -> np.ndarray:
    """Random pixels of the given photographs, as an (N, 3) uint8 palette."""
    picks = []
    for path in paths:
        arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if arr is None:
            raise ValueError(f"{path}: not an image")
        flat = arr.reshape(-1, 3)[:, ::-1]  # BGR -> RGB
        picks.append(flat[rng.integers(0, len(flat), size=per_image)])
    return np.concatenate(picks)


def write_dead_leaves(out: Path, count: int, size: int, seed: int, palette: np.ndarray | None) -> list[Path]:
    """COUNT images OUT/deadleaves-NNNN.png, deterministic for a seed."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        image = dead_leaves(rng, size, palette)
        path = out / f"deadleaves-{i:04d}.png"
        if not cv2.imwrite(str(path), image[:, :, ::-1]):
            raise OSError(f"{path}: could not write")
        paths.append(path)
    return paths
