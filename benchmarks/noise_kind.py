"""How well `imgdiff denoise`'s default tells white noise from camera noise, on the held-out photo slice.

python benchmarks/noise_kind.py [--photos photos] [--crop 512]

Each held-out photograph of build-photos.sh (never trained on) is centre-cropped and degraded: clean,
clean JPEG, white Gaussian noise at sigma 1..50, the training camera pipeline at three noise levels,
as PNG and as JPEG q90 / q70, and the benchmark's film grain (benchmarks/camera.py::film_scan: white
noise blurred by 1.5 or 2.5 px, std 4 or 8, under fine white noise of sigma 1). Prints, per condition, what
`imgdiff.noise.read_noise` answers (white / camera / grain / faint: all but white run the blind
model), the full-resolution, 2x2- and 4x4-averaged estimates and their ratios. The thresholds in
imgdiff/noise.py were set from this table (held-out photos, not benchmark sets); the 4x4 test needs
crops of 512 or more (`--crop 256` shows the 2x2 test alone).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.camera import GRAIN_LEVELS, film_scan  # noqa: E402
from imgdiff.noise import (  # noqa: E402
    COARSE_RATIO,
    CORRELATED_RATIO,
    MIN_CAMERA_SIGMA,
    MIN_WHITE_SIGMA,
    read_noise,
)
from imgdiff.train import camera  # noqa: E402
from imgdiff.train.data import split_images  # noqa: E402

CAMERA_SHOTS = (5e-4, 2e-3, 8e-3)  # shot-noise gains (read noise follows Brooks' fit at its mean)


def jpeg(a: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()


def to8(a: np.ndarray) -> np.ndarray:
    return np.clip(a, 0, 255).round().astype(np.uint8)


def conditions(crop: np.ndarray, seed: int) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (the right answer, image)."""
    rng = np.random.default_rng(seed)
    out = {"clean": ("either", crop), "clean jpeg q85": ("either", jpeg(crop, 85))}
    for s in (1, 2, 3, 5, 10, 25, 50):
        out[f"white sigma {s}"] = ("white", to8(crop + rng.normal(0, s, crop.shape)))
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
    g = torch.Generator().manual_seed(seed)
    levels = camera.random_noise_levels
    for shot in CAMERA_SHOTS:
        camera.random_noise_levels = lambda gen, shot=shot: (shot, float(np.exp(2.18 * np.log(shot) + 1.2)))
        try:
            y = (camera.camera_pipeline(x, g)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        finally:
            camera.random_noise_levels = levels
        out[f"camera shot {shot:g}"] = ("camera", y)
        out[f"camera shot {shot:g} jpeg q90"] = ("camera", jpeg(y, 90))
        out[f"camera shot {shot:g} jpeg q70"] = ("camera", jpeg(y, 70))
    for k, name in enumerate(GRAIN_LEVELS):
        out[f"{name} + white 1"] = ("camera", film_scan(crop, name, 1000 * (k + 1) + seed))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=ROOT / "photos")
    ap.add_argument("--crop", type=int, default=512)
    a = ap.parse_args()
    held = split_images(a.photos)[1]
    if not held:
        sys.exit(f"no held-out photographs in {a.photos} (run ../shared/data/build-photos.sh)")
    table: dict[str, list] = defaultdict(list)
    truth: dict[str, str] = {}
    for i, p in enumerate(held):
        img = np.asarray(Image.open(p).convert("RGB"))
        h, w = img.shape[:2]
        s = min(a.crop, h, w) // 2 * 2
        crop = np.ascontiguousarray(img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s])
        for name, (want, im) in conditions(crop, i).items():
            r = read_noise(im.astype(np.float32) / 255)
            table[name].append(r)
            truth[name] = want
    print(f"{len(held)} held-out photographs of {a.photos}, {a.crop}x{a.crop} centre crops\n")
    print(
        "| condition | right model | read as camera | as grain | as faint | sigma (full res) | averaged x2 | ratio "
        "| 4x4 ratio (where read) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    wrong = 0
    for name, rs in table.items():
        cam, grain, faint = (sum(r.kind == k for r in rs) for k in ("camera", "grain", "faint"))
        blind = sum(r.blind for r in rs)  # both run the blind real-photo model
        want = truth[name]
        wrong += {"camera": len(rs) - blind, "white": blind, "either": 0}[want]
        sig = np.array([r.sigma for r in rs])
        avg = np.array([r.averaged for r in rs])
        ratio = np.array([r.ratio for r in rs])
        coarse = np.array([r.coarse_ratio for r in rs if r.coarse_ratio is not None])
        coarse_cell = f"{coarse.min():.2f}-{coarse.max():.2f} ({len(coarse)})" if len(coarse) else "-"
        print(
            f"| {name} | {want} | {cam} of {len(rs)} | {grain} | {faint} | {sig.mean():.1f} | {avg.mean():.1f} | "
            f"{ratio.mean():.2f} ({ratio.min():.2f}-{ratio.max():.2f}) | {coarse_cell} |"
        )
    total = sum(len(rs) for n, rs in table.items() if truth[n] != "either")
    now = (
        f"CORRELATED_RATIO {CORRELATED_RATIO}, MIN_CAMERA_SIGMA {MIN_CAMERA_SIGMA}, MIN_WHITE_SIGMA {MIN_WHITE_SIGMA}, "
        f"COARSE_RATIO {COARSE_RATIO}"
    )
    print(f"\nwrong models: {wrong} of {total} ({now})")
    print("\nwrong models (white noise to the blind model + camera noise to the Gaussian one) for other thresholds:\n")
    ratios, floors = (1.3, 1.4, 1.5, 1.75, 2.0), (0.5, 0.75, 1.0, 1.5)
    print("| ratio \\ min averaged sigma | " + " | ".join(f"{f:g}" for f in floors) + " |")
    print("| --- |" + " --- |" * len(floors))
    for q in ratios:
        cells = []
        for f in floors:
            white = cam = 0
            for name, rs in table.items():
                said = [
                    (r.averaged >= f and r.averaged > q * max(r.sigma, 0.5))
                    or r.sigma < MIN_WHITE_SIGMA
                    or r.kind == "grain"
                    for r in rs
                ]
                white += sum(said) if truth[name] == "white" else 0
                cam += sum(not x for x in said) if truth[name] == "camera" else 0
            cells.append(f"{white + cam} ({white} + {cam})")
        print(f"| {q:g} | " + " | ".join(cells) + " |")
    print("\nthe same for other 4x4 ratios (the 2x2 thresholds as they are; only readings the 2x2 test calls white):\n")
    print("| 4x4 ratio | white noise to the blind model | camera or grain to the Gaussian one | wrong |")
    print("| --- | --- | --- | --- |")
    for q in (2, 3, 4, 5, 6, 8, float("inf")):
        white = cam = 0
        for name, rs in table.items():
            said = [r.kind in ("camera", "faint") or (r.coarse_ratio or 0) > q for r in rs]
            white += sum(said) if truth[name] == "white" else 0
            cam += sum(not x for x in said) if truth[name] == "camera" else 0
        print(f"| {q:g} | {white} | {cam} | {white + cam} |")


if __name__ == "__main__":
    main()
