#!/usr/bin/env bash
# Regenerates the README's before/after pictures with the shipped checkpoints (CPU, ~2 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
ex=docs/examples
out=docs/pictures
mkdir -p "$out"
imgdiff() { python -m imgdiff "$@"; }
imgdiff denoise "$ex/noisy.png" -o "$out/denoise.png" --overwrite -q
python - <<'PY'
from PIL import Image
Image.open("docs/examples/small.png").resize((384, 256), Image.NEAREST).save("docs/pictures/upscale-input.png")
PY
imgdiff upscale "$ex/small.png" --scale 4 -o "$out/upscale.png" --overwrite -q
imgdiff stylize "$ex/clean.png" --style "$ex/style.png" --strength 0.45 -o "$out/stylize.png" --overwrite -q
imgdiff generate --size 384x256 --seed 3 -o "$out/generate.png" --overwrite -q
