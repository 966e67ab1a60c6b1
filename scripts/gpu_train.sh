#!/usr/bin/env bash
# One lease of a lent GPU: train all four checkpoints side by side (bf16), then check fp16 inference.
# Usage: scripts/gpu_train.sh DATA_DIR OUT_DIR MINUTES [DEVICE]
# DATA_DIR comes from `python -m imgdiff.train.pack CORPUS DATA_DIR` (fits the 64 MiB carry).
set -u
data=$1; out=$2; minutes=$3; dev=${4:-cuda}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
[ "$dev" = cuda ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p "$out"
# task batch crop lr [extra trainer args]; JOBS overrides, e.g. for the next lease:
# JOBS="denoise 96 128 3e-4 --init weights/denoise.safetensors
# upscale-x4 48 192 4e-4" scripts/gpu_train.sh gpu_data OUT 9 cuda
jobs=${JOBS:-"denoise 64 128 5e-4
upscale-x4 32 192 4e-4
upscale-x2 32 160 4e-4
generate 128 64 3e-4"}
tasks=$(cut -d' ' -f1 <<< "$jobs" | tr '\n' ' ')
while read -r task batch crop lr extra; do
  python3 -m imgdiff train --task "$task" --data "$data" --out "$out/$task.safetensors" \
    --run-dir "/tmp/runs/$task" --device "$dev" --bf16 --minutes "$minutes" --batch "$batch" \
    --crop "$crop" --lr "$lr" --warmup 500 --val-every 1000 --threads 4 $extra > "$out/$task.log" 2>&1 &
done <<< "$jobs"
wait
for t in $tasks; do echo "== $t"; grep -v Warning "$out/$t.log" | tail -4; done
python3 - "$out" "$dev" <<'PY'
import sys, torch
from pathlib import Path
from imgdiff.checkpoint import load_tensors, read_config
from imgdiff.models import build_denoiser
from imgdiff.train.data import list_images, is_validation, validation_crops
out, dev = Path(sys.argv[1]), sys.argv[2]
val = validation_crops([p for p in list_images("gpu_data") if is_validation(p.name)]).to(dev)
cfg = read_config(out / "denoise.safetensors")
m = build_denoiser(cfg).to(dev).eval()
m.load_state_dict({k: v.float() for k, v in load_tensors(out / "denoise.safetensors").items()})
s = torch.full((1,), 25 / 127.5, device=dev)
g = torch.Generator(device=dev).manual_seed(0)
y = val + torch.randn(val.shape, generator=g, device=dev) * s
with torch.no_grad():
    a = torch.cat([m(y[i:i+1], s) for i in range(len(y))])
    with torch.autocast(dev, dtype=torch.float16, enabled=dev == "cuda"):
        b = torch.cat([m(y[i:i+1], s) for i in range(len(y))])
ps = lambda u, v: float(10 * torch.log10(4 / ((u.clamp(-1,1) - v) ** 2).mean()))
print(f"fp16-vs-fp32 check: fp32 {ps(a, val):.3f} dB, fp16 {ps(b, val):.3f} dB, fp16 vs fp32 {ps(b, a):.1f} dB, finite {bool(torch.isfinite(b).all())}")
PY
