"""How well `imgdiff denoise`'s default tells white noise from camera noise, on the held-out photo slice.

python benchmarks/noise_kind.py [--photos photos] [--crop 256]

Each held-out photograph of build-photos.sh (never trained on) is centre-cropped and degraded: clean,
clean JPEG, white Gaussian noise at sigma 1..50, and the training camera pipeline at three noise
levels, as PNG and as JPEG q90 / q70. Prints, per condition, what `imgdiff.noise.read_noise` answers
(white / camera / faint: the last two run the blind model), the full-resolution and 2x2-averaged
estimates and their ratio. The thresholds in
imgdiff/noise.py were set from this table (held-out photos, not benchmark sets).
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

from imgdiff.noise import CORRELATED_RATIO, MIN_CAMERA_SIGMA, MIN_WHITE_SIGMA, read_noise  # noqa: E402
from imgdiff.train import camera  # noqa: E402
from imgdiff.train.data import split_images  # noqa: E402

CAMERA_SHOTS = (5e-4, 2e-3, 8e-3)  # shot-noise gains (read noise follows Brooks' fit at its mean)


def jpeg(a: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).copy()


def conditions(crop: np.ndarray, seed: int) -> dict[str, tuple[str, np.ndarray]]:
    """name -> (the right answer, image)."""
    rng = np.random.default_rng(seed)
    out = {"clean": ("either", crop), "clean jpeg q85": ("either", jpeg(crop, 85))}
    for s in (1, 3, 5, 10, 25, 50):
        out[f"white sigma {s}"] = (
            "white",
            np.clip(crop + rng.normal(0, s, crop.shape), 0, 255).round().astype(np.uint8),
        )
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
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=ROOT / "photos")
    ap.add_argument("--crop", type=int, default=256)
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
    print("| condition | right model | read as camera | as faint | sigma (full res) | averaged x2 | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    wrong = 0
    for name, rs in table.items():
        cam = sum(r.kind == "camera" for r in rs)
        faint = sum(r.kind == "faint" for r in rs)
        blind = sum(r.blind for r in rs)  # both run the blind real-photo model
        want = truth[name]
        wrong += {"camera": len(rs) - blind, "white": blind, "either": 0}[want]
        sig = np.array([r.sigma for r in rs])
        avg = np.array([r.averaged for r in rs])
        ratio = np.array([r.ratio for r in rs])
        print(
            f"| {name} | {want} | {cam} of {len(rs)} | {faint} | {sig.mean():.1f} | {avg.mean():.1f} | "
            f"{ratio.mean():.2f} ({ratio.min():.2f}-{ratio.max():.2f}) |"
        )
    total = sum(len(rs) for n, rs in table.items() if truth[n] != "either")
    now = f"CORRELATED_RATIO {CORRELATED_RATIO}, MIN_CAMERA_SIGMA {MIN_CAMERA_SIGMA}, MIN_WHITE_SIGMA {MIN_WHITE_SIGMA}"
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
                    (r.averaged >= f and r.averaged > q * max(r.sigma, 0.5)) or r.sigma < MIN_WHITE_SIGMA for r in rs
                ]
                white += sum(said) if truth[name] == "white" else 0
                cam += sum(not x for x in said) if truth[name] == "camera" else 0
            cells.append(f"{white + cam} ({white} + {cam})")
        print(f"| {q:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
