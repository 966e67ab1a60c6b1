"""Throughput of `imgdiff denoise --ray` against the local CLI on the same folder (docs/SCALE.md).

    python benchmarks/ray_throughput.py            # 8 Kodak24 images, sigma 25, shipped weights

Each row is one whole CLI call, wall clock: the local batch (all cores in one process), and the
same batch on a Ray cluster started beforehand with `ray start --head` (so the rows show the cost
of running on a cluster, not of starting one; the `--ray local` row starts one inside the call).
Outputs of every row are compared byte for byte with the local one. Needs `pip install -e '.[ray]'`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "SCALE.md"
START, END = "<!-- ray-throughput:start -->", "<!-- ray-throughput:end -->"
PORT = 6391


def imgdiff(*args: str) -> float:
    t0 = time.perf_counter()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    subprocess.run([sys.executable, "-m", "imgdiff", *args, "-q"], check=False, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def same(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("*.png"))
    return names == sorted(p.name for p in b.glob("*.png")) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench" / "Kodak24")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--out", type=Path, default=DOC)
    args = ap.parse_args()
    import ray  # noqa: F401  (fail here, before any work, without the extra)

    cores = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="imgdiff-ray-"))
    src = work / "in"
    src.mkdir()
    for p in sorted(args.bench.glob("*.png"))[: args.images]:
        shutil.copy(p, src / p.name)
    n = len(list(src.iterdir()))
    base = ["denoise", str(src), "--sigma", "25"]
    rows = []
    local = work / "local"
    rows.append((f"local CLI, {cores} threads", imgdiff(*base, "-o", str(local)), True))
    ray_cli = str(Path(sys.executable).with_name("ray"))
    ray_start = [ray_cli, "start", "--head", f"--port={PORT}", f"--num-cpus={cores}", "--include-dashboard=false"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    subprocess.run([*ray_start, "--disable-usage-stats"], check=True, capture_output=True, env=env)
    try:
        address = f"127.0.0.1:{PORT}"
        for workers, threads in ((1, cores), (cores, 1)):
            out = work / f"ray{workers}"
            seconds = imgdiff(
                *base, "-o", str(out), "--ray", address, "--workers", str(workers), "--threads", str(threads)
            )
            rows.append((f"Ray, {workers} worker(s) x {threads} thread(s)", seconds, same(local, out)))
    finally:
        subprocess.run([ray_cli, "stop", "--force"], check=False, capture_output=True, env=env)
    out = work / "raylocal"
    seconds = imgdiff(*base, "-o", str(out), "--ray", "local", "--workers", "1", "--threads", str(cores))
    rows.append((f"Ray, `--ray local` (starts its cluster), 1 worker x {cores} threads", seconds, same(local, out)))
    shutil.rmtree(work)

    t_local = rows[0][1]
    table = [
        f"Measured by `python benchmarks/ray_throughput.py` on this {cores}-core machine ({n} Kodak24 images, "
        "768x512, `denoise --sigma 25`, shipped weights, whole-command wall clock):",
        "",
        "| run | seconds | images/s | overhead per image vs local | outputs identical to local |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, s, ok in rows:
        over = "—" if s is t_local else f"{(s - t_local) / n:+.2f} s"
        table.append(f"| {name} | {s:.1f} | {n / s:.2f} | {over} | {'yes' if ok else 'NO'} |")
    block = "\n".join([START, *table, END])
    print(block)
    text = args.out.read_text() if args.out.exists() else f"{START}\n{END}\n"
    args.out.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _m: block, text, flags=re.S))


if __name__ == "__main__":
    main()
