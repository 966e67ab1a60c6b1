"""Issue 4's GPU promises, checked on real hardware in one short run (`run` tool, ~3 min on an H200).

    python scripts/gpu_checks.py OUT_DIR [--device cuda]

1. fp16 on CUDA vs fp32 on the CPU, through the CLI, for denoise / upscale x2 / upscale x4 on the
   shipped example photo: PSNR against the clean reference must agree within 0.1 dB.
2. Out-of-memory: the process's CUDA memory is capped so a whole-image tile cannot fit; the run must
   still succeed (tiles retried smaller) and match the uncapped output.
3. Throughput: megapixels per second for default denoise and x4 upscale on a 4 MP image.
Writes OUT_DIR/gpu_checks.json; exit 1 if a promise fails. With --device cpu it runs 1 and 3 as a
dry run of the script itself (the OOM check needs CUDA).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imgdiff.eval.metrics import psnr  # noqa: E402

EXAMPLES = ROOT / "docs" / "examples"


def cli(*args: str) -> float:
    """Run the real CLI; returns wall seconds, raises on failure."""
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "imgdiff", *args, "-q", "--overwrite"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"imgdiff {' '.join(args)}: {r.stderr.strip()[-400:]}")
    return time.perf_counter() - start


def u8(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def precision_check(out: Path, device: str) -> list[dict]:
    clean = u8(EXAMPLES / "clean.png")
    h, w = clean.shape[:2]
    rows = []
    jobs = [
        ("denoise", EXAMPLES / "noisy.png", ["denoise", "--sigma", "25"], clean),
        ("upscale-x2", None, ["upscale", "--scale", "2"], clean[: h // 2 * 2, : w // 2 * 2]),
        ("upscale-x4", None, ["upscale", "--scale", "4"], clean[: h // 4 * 4, : w // 4 * 4]),
    ]
    for name, src, args, ref in jobs:
        if src is None:  # the low-resolution input of an SR job: the clean photo downscaled
            s = int(args[-1])
            src = out / f"{name}-lr.png"
            Image.fromarray(ref).resize((ref.shape[1] // s, ref.shape[0] // s), Image.BICUBIC).save(src)
        fig = []
        for i, (dev, prec) in enumerate((("cpu", "fp32"), (device, "fp16" if device.startswith("cuda") else "fp32"))):
            dst = out / f"{name}-{i}.png"
            cli(*args[:1], str(src), "-o", str(dst), *args[1:], "--device", dev, "--precision", prec, "--seed", "0")
            fig.append({"device": dev, "precision": prec, "psnr_db": round(psnr(u8(dst), ref), 4)})
        diff = abs(fig[0]["psnr_db"] - fig[1]["psnr_db"])
        rows.append({"model": name, "runs": fig, "difference_db": round(diff, 4), "ok": diff <= 0.1})
    return rows


def oom_check(out: Path) -> dict:
    """Cap CUDA memory below what one whole-image tile needs: the guarded runner must split the tile."""
    code = r"""
import sys, torch, numpy as np
from PIL import Image
from imgdiff import denoise
from imgdiff.eval.metrics import psnr
noisy, clean = (np.tile(np.asarray(Image.open(p).convert("RGB")), (8, 8, 1)) for p in sys.argv[2:4])
a = np.asarray(denoise(Image.fromarray(noisy), sigma=25, device="cuda", tile=0))  # uncapped, one tile
torch.cuda.empty_cache()
torch.cuda.set_per_process_memory_fraction(float(sys.argv[1]))
b = np.asarray(denoise(Image.fromarray(noisy), sigma=25, device="cuda", tile=0))  # must split to fit
print(torch.cuda.memory_stats().get("num_ooms", 0), psnr(a, clean), psnr(b, clean))
"""
    import torch

    cap = 256 << 20  # far below one whole-image tile of a 6 MP photo, far above a 512 tile
    fraction = cap / torch.cuda.get_device_properties(0).total_memory
    r = subprocess.run(
        [sys.executable, "-c", code, str(fraction), str(EXAMPLES / "noisy.png"), str(EXAMPLES / "clean.png")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    fields = r.stdout.split()[-3:] if r.returncode == 0 else []
    ooms, whole, split = (int(fields[0]), float(fields[1]), float(fields[2])) if len(fields) == 3 else (0, 0.0, 0.0)
    return {
        "cap_mib": cap >> 20,
        "ooms_caught": ooms,  # 0 would mean the cap provoked nothing
        "psnr_uncapped_db": whole,
        "psnr_capped_db": split,
        "ok": ooms > 0 and abs(whole - split) <= 0.1,
        "stderr": r.stderr.strip()[-300:],
    }


def throughput(out: Path, device: str) -> list[dict]:
    noisy = u8(EXAMPLES / "noisy.png")
    reps = (int(np.ceil(2048 / noisy.shape[0])), int(np.ceil(2048 / noisy.shape[1])), 1)
    big = np.tile(noisy, reps)[:2048, :2048]
    Image.fromarray(big).save(out / "big.png")
    Image.fromarray(big[::4, ::4]).save(out / "big-lr.png")
    prec = "fp16" if device.startswith("cuda") else "fp32"
    rows = []
    for name, args, mp in (
        ("denoise", ["denoise", str(out / "big.png"), "--sigma", "25"], 2048 * 2048 / 1e6),
        ("upscale-x4", ["upscale", str(out / "big-lr.png"), "--scale", "4"], 2048 * 2048 / 1e6),
    ):
        cli(*args, "-o", str(out / f"warm-{name}.png"), "--device", device, "--precision", prec)  # warm-up
        sec = cli(*args, "-o", str(out / f"tp-{name}.png"), "--device", device, "--precision", prec)
        rows.append({"model": name, "output_mp": round(mp, 2), "seconds": round(sec, 2), "mp_s": round(mp / sec, 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    work = a.out / "work"
    work.mkdir(exist_ok=True)
    report: dict = {"device": a.device, "precision": precision_check(work, a.device)}
    if a.device.startswith("cuda"):
        import torch

        report["gpu"] = torch.cuda.get_device_name(0)
        report["oom_retry"] = oom_check(work)
    report["throughput"] = throughput(work, a.device)
    (a.out / "gpu_checks.json").write_text(json.dumps(report, indent=2) + "\n")
    for p in work.glob("*.png"):
        p.unlink()
    work.rmdir()
    print(json.dumps(report, indent=2))
    ok = all(r["ok"] for r in report["precision"]) and report.get("oom_retry", {"ok": True})["ok"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
