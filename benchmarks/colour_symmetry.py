"""Is the Gaussian denoiser colour-symmetric? One pass on channel-permuted inputs, on the held-out photos.

White Gaussian noise of one sigma per channel is unchanged by permuting R, G and B, so a permuted
input is an equally valid one. If the network did not use colour priors, every order would score the
same and averaging the orders would act like the geometric ensemble; a gap says the network relies on
which channel is green (issue 12 asked whether permutation augmentation is worth a training run).

    python benchmarks/colour_symmetry.py [--photos photos] [--model denoise]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from measure import load_photo_slice
from PIL import Image

from imgdiff import denoise
from imgdiff.eval.evaluate import add_noise
from imgdiff.eval.metrics import psnr

ROOT = Path(__file__).resolve().parent.parent
ORDERS = {"RGB": [0, 1, 2], "GBR": [1, 2, 0], "BRG": [2, 0, 1], "BGR": [2, 1, 0]}


def run(photos: Path, model: str, sigmas: tuple[int, ...]) -> None:
    data = load_photo_slice(photos, None, crop=256)
    if data is None:
        raise SystemExit(f"colour_symmetry.py: no photos in {photos} (run ../shared/data/build-photos.sh)")
    print(f"{len(data.images)} held-out photographs, 256x256 centre crops; RGB PSNR, one pass unless noted")
    print("| sigma | " + " | ".join(ORDERS) + " | mean of RGB/GBR/BRG | --ensemble 3 (flips) |")
    print("| --- " * (len(ORDERS) + 3) + "|")
    for sigma in sigmas:
        scores: dict[str, list[float]] = {k: [] for k in [*ORDERS, "perm3", "geo3"]}
        for i, clean in enumerate(data.images):
            noisy = add_noise(clean, sigma, i)
            outs = {}
            for name, order in ORDERS.items():
                pil = Image.fromarray(np.ascontiguousarray(noisy[..., order]))
                out = np.asarray(denoise(pil, sigma=sigma, model=model, ensemble=1), np.float64)
                outs[name] = out[..., np.argsort(order)]
                scores[name].append(psnr(outs[name].astype(np.uint8), clean))
            mean3 = np.round((outs["RGB"] + outs["GBR"] + outs["BRG"]) / 3).astype(np.uint8)
            scores["perm3"].append(psnr(mean3, clean))
            geo = np.asarray(denoise(Image.fromarray(noisy), sigma=sigma, model=model, ensemble=3))
            scores["geo3"].append(psnr(geo, clean))
        print(f"| {sigma} | " + " | ".join(f"{np.mean(v):.3f}" for v in scores.values()) + " |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, default=ROOT / "photos", help="build-photos.sh output")
    p.add_argument("--model", default="denoise")
    p.add_argument("--sigma", type=int, action="append", help="repeatable (default 15 and 25)")
    a = p.parse_args()
    run(a.photos, a.model, tuple(a.sigma or (15, 25)))


if __name__ == "__main__":
    main()
