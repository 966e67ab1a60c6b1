"""Camera-noise denoising on the held-out photographs, model against model (not a benchmark set).

python benchmarks/camera_photos.py --model weights/denoise-real.safetensors --model runs/X/best.safetensors

Each held-out photograph of build-photos.sh (the slice the trainer validates on, never trained on) is
centre-cropped to 256x256 (a smaller one to its short side) and recorded by the benchmark's camera
(benchmarks/camera.py: not the training pipeline) at its three ISO levels; each model then denoises
the crops through the CLI (`imgdiff denoise DIR --model M`, default ensemble, one step). Prints RGB
PSNR and the texture ratio (high-frequency energy over the clean crop's on its most textured 96x96
square) per ISO, and with --detail the same for each detail gain: the figures a checkpoint (or a
default) is chosen on before the full benchmark, which measures only at its end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.camera import ISO_LEVELS, most_textured_box, record, texture_ratio  # noqa: E402
from benchmarks.measure import imgdiff_cli, load_photo_slice, read_outputs, write_pngs  # noqa: E402
from imgdiff.detail import restore_detail  # noqa: E402
from imgdiff.eval.metrics import psnr  # noqa: E402
from imgdiff.io import ImageData, to_u8  # noqa: E402

SEED = 7  # not the benchmark's seed: another draw of the same camera


def with_detail(a: np.ndarray, gain: float) -> np.ndarray:
    return to_u8(restore_detail(ImageData(np.float32(a / 255)), gain).pixels)


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
    args = p.parse_args()
    held = load_photo_slice(args.photos, None, args.crop)
    if held is None:
        sys.exit(f"benchmarks/camera_photos.py: no held-out photographs in {args.photos}")
    cleans, names = held.images, held.names
    boxes = [most_textured_box(c) for c in cleans]
    print(f"{len(cleans)} held-out photographs, centre crops of up to {args.crop}x{args.crop}")
    with tempfile.TemporaryDirectory() as tmp:
        for k, iso in enumerate(ISO_LEVELS):
            noisy = [record(c, iso, SEED + 1000 * k + i) for i, c in enumerate(cleans)]
            src = Path(tmp) / f"in{k}"
            write_pngs(src, names, noisy)
            db = np.mean([psnr(n, c) for n, c in zip(noisy, cleans, strict=True)])
            tex = np.mean([texture_ratio(n, c, b) for n, c, b in zip(noisy, cleans, boxes, strict=True)])
            cells = [f"input {db:.2f} dB, texture {tex:.2f}"]
            for j, model in enumerate(args.model):
                dst = Path(tmp) / f"out{k}_{j}"
                spec = str(Path(model).resolve()) if Path(model).is_file() else model  # the CLI runs in the repo root
                extra = ("--detail", "1") if args.detail else ()
                imgdiff_cli("denoise", str(src), "-o", str(dst), "--model", spec, "-q", *extra)
                outs = read_outputs(dst, names)
                for gain in [None, *(args.detail or [])]:
                    got = outs if gain is None else [with_detail(o, gain) for o in outs]
                    db = np.mean([psnr(o, c) for o, c in zip(got, cleans, strict=True)])
                    tex = np.mean([texture_ratio(o, c, b) for o, c, b in zip(got, cleans, boxes, strict=True)])
                    label = model if gain is None else f"  --detail {gain:g}"
                    cells.append(f"{label}: {db:.3f} dB, texture {tex:.2f}")
            print(f"{iso}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
