"""Camera-noise denoising on the held-out photographs, model against model (not a benchmark set).

python benchmarks/camera_photos.py --model weights/denoise-real.safetensors --model runs/X/best.safetensors

Each held-out photograph of build-photos.sh (the slice the trainer validates on, never trained on) is
centre-cropped to 256x256 (a smaller one to its short side) and recorded by the benchmark's camera
(benchmarks/camera.py: not the training pipeline) at its three ISO levels; each model then denoises
the crops through the CLI (`imgdiff denoise DIR --model M`, default ensemble, one step). Prints RGB
PSNR and the texture ratio (high-frequency energy over the clean crop's on its most textured 96x96
square) per ISO, and with --detail the same for each detail gain: the figures a checkpoint (or a
default) is chosen on before the full benchmark, which measures only at its end.

--iso 'NAME=SHOT,READ' adds levels of the same camera (e.g. lower ISOs than the benchmark's three).
--clean adds the clean crops themselves as a first row (how close each model leaves a photo with no
noise, which the default sends to it as faint noise); --saturation F scales the crops' colour away
from their luma first (saturated scenes: flowers, fabric, painted toys). --grain replaces the camera's
ISO levels by the benchmark's film grain (benchmarks/camera.py::film_scan, GRAIN_LEVELS; --iso then
takes NAME=BLUR,STD).

--fit-texture T fits camera noise's default gain (imgdiff.defaults.REAL_DETAIL_FIT): per crop and ISO,
the gain that brings its texture ratio to T, regressed as gain - 1 = a * s^p on the std s of what the
model removed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.camera import (  # noqa: E402
    GRAIN_LEVELS,
    ISO_LEVELS,
    film_scan,
    most_textured_box,
    record,
    texture_ratio,
)
from benchmarks.measure import imgdiff_cli, load_photo_slice, read_outputs, write_pngs  # noqa: E402
from imgdiff.detail import removed_std, restore_detail  # noqa: E402
from imgdiff.eval.metrics import psnr  # noqa: E402
from imgdiff.io import ImageData, to_u8  # noqa: E402

SEED = 7  # not the benchmark's seed: another draw of the same camera


def with_detail(a: np.ndarray, gain: float) -> np.ndarray:
    return to_u8(restore_detail(ImageData(np.float32(a / 255)), gain).pixels)


def parse_level(spec: str) -> tuple[str, tuple[float, float]]:
    """'ISO 200=2e-4,2.5e-7' -> ('ISO 200', (0.0002, 2.5e-07))."""
    name, _, values = spec.partition("=")
    shot, read = (float(v) for v in values.split(","))
    return name.strip(), (shot, read)


def saturate(a: np.ndarray, factor: float) -> np.ndarray:
    """Colour moved away from (factor > 1) or toward the pixel's luma, on the 8-bit image."""
    if factor == 1:
        return a
    y = a.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    return np.clip(np.rint(y[..., None] + factor * (a - y[..., None])), 0, 255).astype(np.uint8)


FIT_GAINS = np.arange(1.0, 3.001, 0.05)


def gain_for_texture(out: np.ndarray, clean: np.ndarray, box, target: float) -> float:
    """The smallest gain on FIT_GAINS' range whose texture ratio reaches target (interpolated; the ends
    of the range where it is never or always reached)."""
    tex = [texture_ratio(with_detail(out, g), clean, box) for g in FIT_GAINS]
    return float(np.interp(target, np.maximum.accumulate(tex), FIT_GAINS))


def fit_gain(removed: list[float], gains: list[float]) -> tuple[float, float]:
    """Least squares of log(gain - 1) on log(removed): (a, p) of gain = 1 + a * removed^p."""
    x, y = np.log(removed), np.log(np.maximum(np.asarray(gains) - 1, 1e-3))
    p, log_a = np.polyfit(x, y, 1)
    return float(np.exp(log_a)), float(p)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="checkpoint path or name (repeat to compare)")
    p.add_argument("--photos", type=Path, default=ROOT / "photos", help="build-photos.sh output")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument(
        "--detail",
        type=lambda v: [float(g) for g in v.split(",")],
        default=None,
        help="also sweep these --detail gains (e.g. 1.2,1.4,1.6): each model runs once with --detail 1 and "
        "imgdiff.detail.restore_detail, the function --detail calls, applies each gain to its outputs",
    )
    p.add_argument("--fit-texture", type=float, default=None, metavar="T", help="fit the default gain (see above)")
    p.add_argument(
        "--clean",
        action="store_true",
        help="first the clean crops themselves (what the default sends to the camera model as faint noise): "
        "how close each model leaves them, mean and (min) PSNR",
    )
    p.add_argument(
        "--iso",
        action="append",
        default=[],
        metavar="NAME=SHOT,READ",
        help="an extra level of the same camera before the benchmark's three (e.g. 'ISO 200=2e-4,2.5e-7'); "
        "with --fit-texture it is reported per crop but not fitted",
    )
    p.add_argument(
        "--saturation",
        type=float,
        default=1.0,
        help="scale each crop's colour away from its luma by this factor (clipped) before the camera: "
        "held-out stand-ins for saturated scenes (flowers, fabric, painted toys)",
    )
    p.add_argument(
        "--grain", action="store_true", help="the benchmark's film-grain levels instead of its camera's ISO levels"
    )
    args = p.parse_args()
    fit: tuple[list[float], list[float]] = ([], [])
    held = load_photo_slice(args.photos, None, args.crop)
    if held is None:
        sys.exit(f"benchmarks/camera_photos.py: no held-out photographs in {args.photos}")
    cleans, names = [saturate(c, args.saturation) for c in held.images], held.names
    boxes = [most_textured_box(c) for c in cleans]
    print(f"{len(cleans)} held-out photographs, centre crops of up to {args.crop}x{args.crop}")
    levels: dict[str, tuple[float, float] | None] = {"clean": None} if args.clean else {}
    levels.update(parse_level(v) for v in args.iso)
    standard, degrade = (GRAIN_LEVELS, film_scan) if args.grain else (ISO_LEVELS, record)
    levels.update(standard)
    draws = [*standard, *(k for k in levels if k not in standard)]  # each standard level keeps its draw
    with tempfile.TemporaryDirectory() as tmp:
        for iso, level in levels.items():
            k = draws.index(iso)
            noisy = cleans if level is None else [degrade(c, level, SEED + 1000 * k + i) for i, c in enumerate(cleans)]
            src = Path(tmp) / f"in{iso}"
            write_pngs(src, names, noisy)
            db = np.mean([psnr(n, c) for n, c in zip(noisy, cleans, strict=True)])
            tex = np.mean([texture_ratio(n, c, b) for n, c, b in zip(noisy, cleans, boxes, strict=True)])
            cells = [f"input {db:.2f} dB, texture {tex:.2f}"]
            for j, model in enumerate(args.model):
                dst = Path(tmp) / f"out{iso}_{j}"
                spec = str(Path(model).resolve()) if Path(model).is_file() else model  # the CLI runs in the repo root
                extra = ("--detail", "1") if args.detail or args.fit_texture else ()
                imgdiff_cli("denoise", str(src), "-o", str(dst), "--model", spec, "-q", *extra)
                outs = read_outputs(dst, names)
                if args.fit_texture and j == 0:
                    crops = [
                        (
                            removed_std(np.float32(n / 255), np.float32(o / 255)),
                            texture_ratio(o, c, b),
                            gain_for_texture(o, c, b, args.fit_texture),
                        )
                        for o, n, c, b in zip(outs, noisy, cleans, boxes, strict=True)
                    ]
                    print(f"{iso} per crop (removed std s, texture at gain 1, gain for {args.fit_texture:g}):", end="")
                    print("".join(f" ({s:.1f}, {t:.2f}, {g:.2f})" for s, t, g in crops))
                    if iso in ISO_LEVELS:
                        fit[0].extend(s for s, _, _ in crops)
                        fit[1].extend(g for _, _, g in crops)
                for gain in [None, *(args.detail or [])]:
                    got = outs if gain is None else [with_detail(o, gain) for o in outs]
                    dbs = [psnr(o, c) for o, c in zip(got, cleans, strict=True)]
                    tex = np.mean([texture_ratio(o, c, b) for o, c, b in zip(got, cleans, boxes, strict=True)])
                    label = model if gain is None else f"  --detail {gain:g}"
                    worst = f" (min {min(dbs):.2f})" if iso == "clean" else ""
                    cells.append(f"{label}: {np.mean(dbs):.3f} dB{worst}, texture {tex:.2f}")
            print(f"{iso}: " + " | ".join(cells), flush=True)
    if args.fit_texture:
        a, p_ = fit_gain(*fit)
        print(f"{args.model[0]}: texture {args.fit_texture:g} at gain = 1 + {a:.3f} s^{p_:.3f} (s: removed std)")


if __name__ == "__main__":
    main()
