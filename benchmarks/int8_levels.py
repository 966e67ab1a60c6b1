"""What int8 costs a model, level by level, with the blocks from N channels up in int8 (the rest fp32),
for each N: the upscalers' Y-PSNR on Set5 / Set14, denoise's RGB PSNR on the held-out photographs
(sigma 25, one pass, no ensemble). The result is stored in the checkpoint as `int8_min_channels`
(imgdiff/models/onednn.py); speed is measured by the whole-CLI rows of benchmarks/run.py.

    python benchmarks/int8_levels.py --model upscale-x4 [--bench ../shared/bench]
    python benchmarks/int8_levels.py --model denoise [--photos photos]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import load_photo_slice  # noqa: E402
from imgdiff.checkpoint import read_config  # noqa: E402
from imgdiff.device import make_runtime  # noqa: E402
from imgdiff.eval.evaluate import add_noise, evaluate_upscale, to_data  # noqa: E402
from imgdiff.eval.metrics import psnr  # noqa: E402
from imgdiff.hub import LoadedModel, load, resolve  # noqa: E402
from imgdiff.io import to_u8  # noqa: E402
from imgdiff.pipelines.denoise import denoise_image  # noqa: E402

THRESHOLDS = (1024, 128, 64, 32)  # 1024: no block in int8


def photo_psnr(model: LoadedModel, images: list[np.ndarray], sigma: float = 25.0) -> float:
    """Mean PSNR of one fp32(+int8) pass over the held-out photographs' 256² centre crops."""
    rt = replace(make_runtime("cpu", "auto", None), dtype=torch.float32, ensemble=1)
    scores = []
    for i, clean in enumerate(images):
        noisy = add_noise(clean.astype(np.float64), sigma, i)
        scores.append(psnr(to_u8(denoise_image(to_data(noisy), model, rt, sigma).pixels), clean))
    return float(np.mean(scores))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="upscale-x4")
    p.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench")
    p.add_argument("--photos", type=Path, default=ROOT / "photos")
    a = p.parse_args()
    rt = make_runtime("cpu", "auto", None)
    if not rt.int8:
        raise SystemExit("int8_levels.py: this CPU has no int8 path (VNNI); nothing to measure")
    task = read_config(resolve(a.model)[0]).get("task")  # a manifest name or a checkpoint file
    model = load(a.model, task, torch.device("cpu"))
    if task == "denoise":
        held = load_photo_slice(a.photos, None, 256)
        if held is None:
            raise SystemExit(f"int8_levels.py: no held-out photographs in {a.photos} (build-photos.sh writes them)")
    sets = ["held-out photos"] if task == "denoise" else ["Set5", "Set14"]
    metric = "RGB PSNR at sigma 25" if task == "denoise" else "Y-PSNR"
    print(f"{a.model}: {metric} (dB) with blocks of at least N channels in int8")
    print("| set | " + " | ".join(f"N = {n}" if n < 1024 else "fp32" for n in THRESHOLDS) + " |")
    print("| --- " * (len(THRESHOLDS) + 1) + "|")
    for name in sets:
        row = []
        for n in THRESHOLDS:
            model.config["int8_min_channels"] = n
            if task == "denoise":
                row.append(photo_psnr(model, held.images))
            else:
                row.append(evaluate_upscale(a.bench / name, model, rt)["imgdiff"]["psnr"])
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()
