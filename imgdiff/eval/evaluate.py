"""`imgdiff eval`: PSNR/SSIM of imgdiff against the trivial and classical baselines, in process.

Clean images are degraded with a fixed seed exactly as the benchmark protocol says (AWGN, or an
antialiased bicubic downscale of the modcropped image), then quantised to 8 bits as a file would
be. The heavier side-by-side benchmark against BM3D and learned peers is `benchmarks/run.py`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..device import Runtime
from ..hub import LoadedModel
from ..io import ImageData, to_u8
from ..pipelines.denoise import denoise_image
from ..pipelines.restore import restore_image
from ..train.data import list_images
from .metrics import psnr, psnr_y, rgb_to_y, ssim

NLM_H = 0.6  # fastNlMeans h = 0.6 sigma: best of 0.6..1.2 on held-out corpus crops


@dataclass
class MethodScores:
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    seconds: float = 0.0
    megapixels: float = 0.0

    def add(self, p: float, s: float, seconds: float, mp: float) -> None:
        self.psnr.append(p)
        self.ssim.append(s)
        self.seconds += seconds
        self.megapixels += mp

    def summary(self) -> dict:
        return {
            "psnr": round(float(np.mean(self.psnr)), 3),
            "ssim": round(float(np.mean(self.ssim)), 4),
            "s_per_mp": round(self.seconds / max(self.megapixels, 1e-9), 3),
            "images": len(self.psnr),
        }


def load_u8(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def to_data(a: np.ndarray) -> ImageData:
    return ImageData(pixels=a.astype(np.float32) / 255)


def add_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 255).round().astype(np.uint8)


def modcrop(a: np.ndarray, scale: int) -> np.ndarray:
    h, w = a.shape[0] // scale * scale, a.shape[1] // scale * scale
    return a[:h, :w]


def bicubic(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize(size, Image.BICUBIC))


def evaluate_denoise(
    folder: Path,
    model: LoadedModel,
    rt: Runtime,
    sigma: float,
    steps: int = 1,
    limit: int = 0,
    seed: int = 0,
    grid: Path | None = None,
) -> dict:
    scores = {"noisy": MethodScores(), "nlmeans": MethodScores(), "imgdiff": MethodScores()}
    rows = []
    for i, path in enumerate(list_images(folder)[: limit or None]):
        clean = load_u8(path)
        noisy = add_noise(clean.astype(np.float64), sigma, seed + i)
        mp = clean.shape[0] * clean.shape[1] / 1e6
        scores["noisy"].add(psnr(noisy, clean), ssim(noisy, clean), 0.0, mp)
        t = time.perf_counter()
        nlm = cv2.fastNlMeansDenoisingColored(noisy, None, NLM_H * sigma, NLM_H * sigma, 7, 21)
        scores["nlmeans"].add(psnr(nlm, clean), ssim(nlm, clean), time.perf_counter() - t, mp)
        t = time.perf_counter()
        out = to_u8(denoise_image(to_data(noisy), model, rt, sigma, steps, seed).pixels)
        scores["imgdiff"].add(psnr(out, clean), ssim(out, clean), time.perf_counter() - t, mp)
        if grid and i < 4:
            rows.append([noisy, out, clean])
    if grid and rows:
        write_grid(grid, rows)
    return {k: v.summary() for k, v in scores.items()}


def evaluate_upscale(
    folder: Path,
    model: LoadedModel,
    rt: Runtime,
    steps: int = 1,
    limit: int = 0,
    seed: int = 0,
    grid: Path | None = None,
) -> dict:
    s = int(model.config["scale"])
    scores = {"bicubic": MethodScores(), "imgdiff": MethodScores()}
    rows = []
    for i, path in enumerate(list_images(folder)[: limit or None]):
        hr = modcrop(load_u8(path), s)
        h, w = hr.shape[:2]
        lr = bicubic(hr, (w // s, h // s))
        mp = h * w / 1e6

        def y_ssim(a: np.ndarray, hr: np.ndarray = hr) -> float:
            return ssim(rgb_to_y(a)[s:-s, s:-s], rgb_to_y(hr)[s:-s, s:-s])

        t = time.perf_counter()
        bic = bicubic(lr, (w, h))
        scores["bicubic"].add(psnr_y(bic, hr, s), y_ssim(bic), time.perf_counter() - t, mp)
        t = time.perf_counter()
        out = to_u8(restore_image(to_data(lr), model, rt, steps, seed).pixels)
        scores["imgdiff"].add(psnr_y(out, hr, s), y_ssim(out), time.perf_counter() - t, mp)
        if grid and i < 4:
            rows.append([bic, out, hr])
    if grid and rows:
        write_grid(grid, rows)
    return {k: v.summary() for k, v in scores.items()}


def write_grid(path: Path, rows: list[list[np.ndarray]], cell: int = 256) -> None:
    """input | output | reference, one row per image, each a centre crop of `cell` pixels."""

    def crop(a: np.ndarray) -> np.ndarray:
        h, w = a.shape[:2]
        c = min(cell, h, w)
        y, x = (h - c) // 2, (w - c) // 2
        return np.asarray(Image.fromarray(a[y : y + c, x : x + c]).resize((cell, cell), Image.NEAREST))

    gap = 4
    canvas = np.full((len(rows) * (cell + gap) - gap, 3 * (cell + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, a in enumerate(row):
            canvas[r * (cell + gap) : r * (cell + gap) + cell, c * (cell + gap) : c * (cell + gap) + cell] = crop(a)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
