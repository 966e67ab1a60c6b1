"""What int8 costs an upscaler, level by level: Y-PSNR on Set5 / Set14 with the blocks from N channels
up in int8 (the rest fp32), for each N. The result is stored in the checkpoint as `int8_min_channels`
(imgdiff/models/onednn.py); speed is measured by the whole-CLI rows of benchmarks/run.py.

    python benchmarks/int8_levels.py --model upscale-x4 [--bench ../shared/bench]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from imgdiff.device import make_runtime
from imgdiff.eval.evaluate import evaluate_upscale
from imgdiff.hub import load

THRESHOLDS = (1024, 128, 64, 32)  # 1024: no block in int8


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="upscale-x4")
    p.add_argument("--bench", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "bench")
    a = p.parse_args()
    rt = make_runtime("cpu", "auto", None)
    if not rt.int8:
        raise SystemExit("int8_levels.py: this CPU has no int8 path (VNNI); nothing to measure")
    model = load(a.model, "restore", torch.device("cpu"))
    print(f"{a.model}: Y-PSNR (dB) with blocks of at least N channels in int8")
    print("| set | " + " | ".join(f"N = {n}" if n < 1024 else "fp32" for n in THRESHOLDS) + " |")
    print("| --- " * (len(THRESHOLDS) + 1) + "|")
    for name in ("Set5", "Set14"):
        row = []
        for n in THRESHOLDS:
            model.config["int8_min_channels"] = n
            row.append(evaluate_upscale(a.bench / name, model, rt)["imgdiff"]["psnr"])
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()
