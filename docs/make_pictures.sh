#!/usr/bin/env bash
# Regenerates the README's before/after pictures with the shipped checkpoints (CPU, ~3 minutes).
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
# a texture in the example style (the style learnt by the stylize call above, from the cache), and a
# seamless texture shown tiled 2x2, so a seam would be visible
imgdiff generate --style "$ex/style.png" --size 384x256 --seed 3 -o "$out/generate-style.png" --overwrite -q
imgdiff generate --size 192x128 --tileable --seed 5 -o "$out/tile.png" --overwrite -q
python - <<'PY'
from PIL import Image
tile = Image.open("docs/pictures/tile.png")
grid = Image.new("RGB", (tile.width * 2, tile.height * 2))
for x in (0, tile.width):
    for y in (0, tile.height):
        grid.paste(tile, (x, y))
grid.save("docs/pictures/generate-tiled.png")
PY
rm "$out/tile.png"
