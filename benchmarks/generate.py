"""The generate benchmark of issue 15: are the textures seamless, natural-looking and sharp?

Three numbers per set of samples:
- seam ratio: mean absolute step across the wrap-around seams (last column to first, last row to
  first) over the mean step between neighbouring pixels inside; 1 = seamless when tiled, a plain
  photo crop is well above 1;
- texture distance: sliced Wasserstein distance of mean-removed 5x5 lightness patches at 3 scales
  (the style benchmark's texture statistic) to a reference set: held-out photographic textures for
  plain `generate`, the style image for `generate --style`; for plain `generate` twice: against
  crops at the photographs' own scale, and against crops zoomed out as the model's training crops
  were (real texture crops at zoom 0.25 score 1.6 against zoom-1 crops, as far as a smear);
- sharpness: mean squared Laplacian of the lightness over the reference's (1 = as much fine detail,
  below 1 = smoother; the "blurry smears" of the issue read low here).

Controls put the numbers on a scale: another set of crops of the same reference images (what a real
texture scores) and the same crops Gaussian-blurred (sigma 2 px: what a smear scores).
"""

from __future__ import annotations

import cv2
import numpy as np

from imgdiff.colour import to_lab


def seam_ratio(a: np.ndarray) -> float:
    x = a.astype(np.float64)
    inner = 0.5 * (np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=0)).mean())
    seam = 0.5 * (np.abs(x[:, 0] - x[:, -1]).mean() + np.abs(x[0] - x[-1]).mean())
    return float(seam / max(inner, 1e-9))


def _laplacian_energy(a: np.ndarray) -> float:
    lum = to_lab(a.astype(np.float32) / 255)[..., 0].astype(np.float64)
    return float((cv2.Laplacian(lum, cv2.CV_64F) ** 2).mean())


def sharpness(samples: list[np.ndarray], reference: list[np.ndarray]) -> float:
    return float(np.mean([_laplacian_energy(a) for a in samples]) / np.mean([_laplacian_energy(a) for a in reference]))


def random_crops(images: list[np.ndarray], side: int, count: int, seed: int) -> list[np.ndarray]:
    """`count` side x side crops, images taken in turn, positions from the seed."""
    return zoomed_crops(images, side, count, (1.0,), seed)


def zoomed_crops(
    images: list[np.ndarray], side: int, count: int, zooms: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """`count` crops of the images area-downscaled by each zoom in turn: real texture at the scales a
    generate model learnt from (its training crops zoom out), which zoom-1 crops are not."""

    def zoomed(a: np.ndarray, z: float) -> np.ndarray:
        size = (round(a.shape[1] * z), round(a.shape[0] * z))
        return a if z == 1 else cv2.resize(a, size, interpolation=cv2.INTER_AREA)

    scaled = {z: [zoomed(a, z) for a in images] for z in zooms}
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        a = scaled[zooms[i % len(zooms)]][(i // len(zooms)) % len(images)]
        s = min(side, *a.shape[:2])
        y, x = int(rng.integers(0, a.shape[0] - s + 1)), int(rng.integers(0, a.shape[1] - s + 1))
        crops.append(np.ascontiguousarray(a[y : y + s, x : x + s]))
    return crops


def blurred(images: list[np.ndarray], sigma: float = 2.0) -> list[np.ndarray]:
    return [cv2.GaussianBlur(a, (0, 0), sigma) for a in images]


def main() -> None:
    """python benchmarks/generate.py: how far real texture is from itself at another scale.

    Crops of the held-out photographic textures, area-downscaled by each zoom, against zoom-1 crops of
    the same images (docs/TRAINING.md): the texture distance counts a change of scale as it counts a
    smear, so generated samples must be compared with crops at the scales their model learnt from."""
    import argparse
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from benchmarks.measure import held_out_textures
    from imgdiff.eval.metrics import texture_distance

    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, default=root / "photos", help="build-photos.sh output")
    args = p.parse_args()
    refs = held_out_textures(args.photos)
    reference = random_crops(refs, 256, 8, seed=1)
    print(f"{len(refs)} held-out textures; reference: 8 zoom-1 crops of 256²")
    print("| crops of 128² at zoom | texture distance | sharpness |")
    print("| --- | --- | --- |")
    for z in (1.0, 0.75, 0.5, 0.35, 0.25):
        crops = zoomed_crops(refs, 128, 8, (z,), seed=2)
        print(f"| {z:g} | {texture_distance(crops, reference):.3f} | {sharpness(crops, reference):.2f} |")
    smear = blurred(random_crops(refs, 256, 8, seed=2))
    print(f"| 1, blurred σ 2 px | {texture_distance(smear, reference):.3f} | {sharpness(smear, reference):.2f} |")


if __name__ == "__main__":
    main()
