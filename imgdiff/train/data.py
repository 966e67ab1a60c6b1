"""Training images held in memory as uint8 tensors, sampled as random augmented crops.

The validation slice is chosen by a hash of each file name, so it is stable across runs,
machines and sessions, and never seen by the optimiser.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from ..io import FORMATS

EXTS = tuple(FORMATS)  # every format imgdiff reads and writes


def is_validation(name: str, fraction: float = 0.1) -> bool:
    """Held out by source image: crops packed as `STEM__N.png` follow their source."""
    stem = Path(name).stem.split("__")[0]
    h = int(hashlib.sha256(stem.encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < fraction


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in EXTS)


def load_rgb(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


class ImageBank:
    """Random crops with flips and 90-degree rotations; images picked in proportion to area."""

    def __init__(self, images: list[torch.Tensor], min_side: int = 64) -> None:
        """images: uint8 (3, H, W) tensors, already on the training device."""
        self.images = [im for im in images if min(im.shape[1:]) >= min_side]
        if not self.images:
            raise ValueError(f"no training image is at least {min_side} pixels on each side")
        area = torch.tensor([im.shape[1] * im.shape[2] for im in self.images], dtype=torch.float64)
        self.weights = area / area.sum()

    @classmethod
    def from_paths(cls, paths: list[Path], device: torch.device, min_side: int = 64) -> ImageBank:
        return cls([load_rgb(p).to(device) for p in paths], min_side)

    def sample(
        self,
        batch: int,
        crop: int,
        gen: torch.Generator,
        zoom: tuple[float, float] = (1.0, 1.0),
    ) -> torch.Tensor:
        """(batch, 3, crop, crop) floats in [-1, 1].

        zoom < 1 area-downsamples a larger region first: denser texture per pixel, as in photos
        smaller than the corpus's 2048-px wallpapers.
        """
        idx = torch.multinomial(self.weights, batch, replacement=True, generator=gen)
        out = []
        for i in idx.tolist():
            im = self.images[i]
            z = float(torch.empty(1).uniform_(*zoom, generator=gen)) if zoom != (1.0, 1.0) else 1.0
            side = min(int(round(crop / z)), im.shape[1], im.shape[2])
            y = int(torch.randint(0, im.shape[1] - side + 1, (1,), generator=gen))
            x = int(torch.randint(0, im.shape[2] - side + 1, (1,), generator=gen))
            patch = im[:, y : y + side, x : x + side].float()
            if side != crop:
                patch = F.interpolate(patch[None], size=(crop, crop), mode="area")[0]
            k = int(torch.randint(0, 8, (1,), generator=gen))
            if k & 4:
                patch = patch.flip(2)
            out.append(torch.rot90(patch, k & 3, dims=(1, 2)))
        return torch.stack(out) / 127.5 - 1


def validation_crops(paths: list[Path], size: int = 256, zoom: float = 1.0) -> torch.Tensor:
    """Centre crops of the held-out images (area-downscaled by zoom first): a fixed, fast validation set."""
    crops = []
    for p in paths:
        im = load_rgb(p)
        if zoom != 1.0:
            im = F.interpolate(im[None].float(), scale_factor=zoom, mode="area")[0].round().to(torch.uint8)
        h, w = im.shape[1:]
        s = min(size, h, w) // 16 * 16
        y, x = (h - s) // 2, (w - s) // 2
        c = im[:, y : y + s, x : x + s].float() / 127.5 - 1
        if s != size:
            c = F.interpolate(c[None], size=(size, size), mode="bicubic", align_corners=False)[0].clamp(-1, 1)
        crops.append(c)
    return torch.stack(crops)
