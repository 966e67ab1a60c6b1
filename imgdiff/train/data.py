"""Training images held in memory as uint8 tensors, sampled as random augmented crops.

The validation slice is chosen by a hash of each file name, so it is stable across runs,
machines and sessions, and never seen by the optimiser.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from ..io import FORMATS

EXTS = tuple(FORMATS)  # every format imgdiff reads and writes


MANIFEST_FRACTION = 0.15  # held out of each class of a folder with a manifest.tsv (photos, textures)


def _stem(name: str) -> str:
    """Crops packed as `STEM__N.png` follow their source image."""
    return Path(name).stem.split("__")[0]


def _hash(stem: str) -> float:
    return int(hashlib.sha256(stem.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def is_validation(name: str, fraction: float = 0.1) -> bool:
    """Held out by file-name hash: the split of a folder without a manifest (the wallpapers)."""
    return _hash(_stem(name)) < fraction


def manifest_rows(folder: Path) -> list[dict] | None:
    """The kept, named rows of FOLDER/manifest.tsv (name, cls, ...), or None without one."""
    path = Path(folder) / "manifest.tsv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r.get("decision", "keep") == "keep" and r.get("name")]


def held_out_stems(folder: Path) -> tuple[set[str], set[str]] | None:
    """(held-out stems, every listed stem) from FOLDER/manifest.tsv, or None without one.

    A pure hash threshold on 74 photographs held out 5, three of them textures; this takes the
    lowest-hash 15 % of each class (`cls`: photo, texture) instead, so the slice has the mix of the
    folder. The universe is the manifest's kept rows, not the files, so a packed copy of the folder
    (crops `STEM__N.png` beside the same manifest) holds out the same images.
    """
    rows = manifest_rows(folder)
    if rows is None:
        return None
    groups: dict[str, list[str]] = {}
    for r in rows:
        groups.setdefault(r.get("cls", ""), []).append(_stem(r["name"]))
    held = set()
    for stems in groups.values():
        held.update(sorted(stems, key=_hash)[: max(1, round(MANIFEST_FRACTION * len(stems)))])
    return held, {s for stems in groups.values() for s in stems}


def split_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(training, held-out) images of a folder: stratified by its manifest if it has one, else hashed."""
    paths = list_images(folder)
    listed = held_out_stems(folder)

    def held(p: Path) -> bool:
        if listed is not None and _stem(p.name) in listed[1]:
            return _stem(p.name) in listed[0]
        return is_validation(p.name)

    flags = [held(p) for p in paths]
    return [p for p, f in zip(paths, flags, strict=True) if not f], [p for p, f in zip(paths, flags, strict=True) if f]


def check_shares(shares: list[float | None]) -> float:
    """The sum of the fixed shares of the crops; more than 1 cannot be honoured."""
    fixed = sum(share for share in shares if share is not None)
    if fixed > 1 + 1e-9:
        raise ValueError(f"--data shares add up to {fixed:g}; they may not add up to more than 1")
    return fixed


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in EXTS)


def load_rgb(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


class ImageBank:
    """Random crops with flips and 90-degree rotations; images picked in proportion to area."""

    def __init__(self, images: list[torch.Tensor], min_side: int = 64, share: list[float] | None = None) -> None:
        """images: uint8 (3, H, W) tensors, already on the training device.

        share: per image, a weight multiplying its area (how a source's share of the crops is set).
        """
        share = share or [1.0] * len(images)
        keep = [i for i, im in enumerate(images) if min(im.shape[1:]) >= min_side]
        if not keep:
            raise ValueError(f"no training image is at least {min_side} pixels on each side")
        self.images = [images[i] for i in keep]
        area = torch.tensor([images[i].shape[1] * images[i].shape[2] * share[i] for i in keep], dtype=torch.float64)
        self.weights = area / area.sum()

    @classmethod
    def from_sources(cls, sources: list[tuple[list[Path], float | None]], device, min_side: int = 64) -> ImageBank:
        """sources: (paths, share of the crops) per data folder.

        Folders without a share split what the others leave (1 - their shares) in proportion to area,
        so a few small photographs can be given as much of the training as 2048-px wallpapers.
        """
        fixed = check_shares([share for _, share in sources])
        images = [[load_rgb(p).to(device) for p in paths] for paths, _ in sources]
        areas = [sum(im.shape[1] * im.shape[2] for im in ims if min(im.shape[1:]) >= min_side) for ims in images]
        free = sum(a for (_, share), a in zip(sources, areas, strict=True) if share is None)
        weights = []
        for (_, share), ims, area in zip(sources, images, areas, strict=True):
            frac = share if share is not None else (1 - fixed) * area / max(free, 1)
            weights += [frac / max(area, 1)] * len(ims)  # per pixel: the folder's fraction over its area
        return cls([im for ims in images for im in ims], min_side, weights)

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


def zoom_levels(zoom: tuple[float, float] | list[float], n: int = 4) -> tuple[float, ...]:
    """The midpoints of n equal slices of a crop zoom range: held-out crops drawn at these see texture
    at the scales ImageBank.sample's training crops do (it draws the zoom uniformly)."""
    lo, hi = (float(z) for z in zoom)
    if lo == hi:
        return (lo,)
    return tuple(round(lo + (hi - lo) * (i + 0.5) / n, 6) for i in range(n))


def validation_crops(paths: list[Path], size: int = 256, zoom: float = 1.0, grid: int = 1) -> torch.Tensor:
    """grid x grid evenly spread crops of each held-out image (area-downscaled by zoom first).

    grid 1 is the centre crop (the wallpaper slice's set since the first run); a larger grid
    samples more of each photograph, so that a few held-out photos still give a steady figure.
    """
    crops = []
    for p in paths:
        im = load_rgb(p)
        if zoom != 1.0:
            im = F.interpolate(im[None].float(), scale_factor=zoom, mode="area")[0].round().to(torch.uint8)
        h, w = im.shape[1:]
        s = min(size, h, w) // 16 * 16
        for gy in range(grid):
            for gx in range(grid):
                y, x = (h - s) * (2 * gy + 1) // (2 * grid), (w - s) * (2 * gx + 1) // (2 * grid)
                c = im[:, y : y + s, x : x + s].float() / 127.5 - 1
                if s != size:
                    c = F.interpolate(c[None], size=(size, size), mode="bicubic", align_corners=False)[0].clamp(-1, 1)
                crops.append(c)
    return torch.stack(crops)
