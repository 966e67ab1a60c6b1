"""Pack a corpus into random crops under a byte budget, to carry it to a remote accelerator.

Held-out images are kept whole-ish (their centre crop), so validation there matches validation here.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
from pathlib import Path

from PIL import Image

from .data import split_images


def pack(src: Path, dst: Path, budget_mb: float, crop: int, seed: int = 0) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    train, held = split_images(src)
    if (src / "manifest.tsv").is_file():  # the packed crops keep the folder's stratified split
        shutil.copy(src / "manifest.tsv", dst / "manifest.tsv")
    used = 0
    for p in held:
        with Image.open(p) as im:
            w, h = im.size
            s = min(256, w, h)
            c = im.convert("RGB").crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            c.save(dst / f"{p.stem}__0.png")
            used += (dst / f"{p.stem}__0.png").stat().st_size
    ims = {p: Image.open(p).convert("RGB") for p in train}
    k = 0
    while used < budget_mb * 1e6:
        p = rng.choice(train)
        im = ims[p]
        s = min(crop, *im.size)
        x, y = rng.randint(0, im.width - s), rng.randint(0, im.height - s)
        buf = io.BytesIO()
        im.crop((x, y, x + s, y + s)).save(buf, format="PNG")
        (dst / f"{p.stem}__{k + 1}.png").write_bytes(buf.getvalue())
        used += len(buf.getvalue())
        k += 1
    print(f"{k} crops, {used / 1e6:.1f} MB in {dst}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--budget-mb", type=float, default=55)
    ap.add_argument("--crop", type=int, default=384)
    a = ap.parse_args()
    pack(a.src, a.dst, a.budget_mb, a.crop)
