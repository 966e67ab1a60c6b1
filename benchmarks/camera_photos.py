"""Camera-noise denoising on the held-out photographs, model against model (not a benchmark set).

python benchmarks/camera_photos.py --model weights/denoise-real.safetensors --model runs/X/best.safetensors

Each held-out photograph of build-photos.sh (the slice the trainer validates on, never trained on) is
centre-cropped to 256x256 (a smaller one to its short side) and recorded by the benchmark's camera
(benchmarks/camera.py: not the training pipeline) at its three ISO levels; each model then denoises
the crops through the CLI (`imgdiff denoise DIR --model M`, default ensemble, one step). Prints RGB
PSNR and the texture ratio (high-frequency energy over the clean crop's on its most textured 96x96
square) per ISO: the figures a checkpoint is shipped on before the full benchmark, which measures
only at its end.
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
from imgdiff.eval.metrics import psnr  # noqa: E402

SEED = 7  # not the benchmark's seed: another draw of the same camera


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="checkpoint path or name (repeat to compare)")
    p.add_argument("--photos", type=Path, default=ROOT / "photos", help="build-photos.sh output")
    p.add_argument("--crop", type=int, default=256)
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
                imgdiff_cli("denoise", str(src), "-o", str(dst), "--model", spec, "-q")
                outs = read_outputs(dst, names)
                db = np.mean([psnr(o, c) for o, c in zip(outs, cleans, strict=True)])
                tex = np.mean([texture_ratio(o, c, b) for o, c, b in zip(outs, cleans, boxes, strict=True)])
                cells.append(f"{model}: {db:.3f} dB, texture {tex:.2f}")
            print(f"{iso}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
