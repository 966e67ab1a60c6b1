"""Regenerate docs/BENCHMARKS.md: imgdiff, run through its CLI exactly as a user would, beside peers.

This is not `imgdiff eval`: the published comparison must include what a user pays (process
start-up, model load, PNG I/O) and peers that are no runtime dependency of imgdiff (CBM3D, OpenCV
dnn_superres), on the protocol of ../shared/bench/README.md. Every measured number is recomputed on
each run; only the published figures below are constants.

Usage: python benchmarks/run.py [--bench ../shared/bench] [--peers ../shared/peers] [--quick]
       [--bm3d-images N] [--out docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python benchmarks/run.py` puts benchmarks/, not the repo, on the path

# isort: off
from benchmarks.measure import (  # noqa: E402  (first: it sets the thread counts before numpy and torch load)
    _T0,
    BIG_SIZE,
    CORES,
    CROP,
    DENOISE_ROWS,
    PHOTO_BM3D_SIGMA,
    NO_AMX_ENV,
    PHOTO_SCALES,
    PHOTO_SIGMAS,
    SR_ROWS,
    STEP_IMAGES,
    DenoiseRow,
    SRRow,
    bench_big,
    bench_call_overhead,
    bench_camera,
    bench_camera_upscale,
    bench_grain,
    bench_denoise,
    bench_generate,
    bench_noise_estimate,
    bench_precision,
    bench_real_noise,
    bench_real_upscale,
    bench_sr,
    bench_steps,
    bench_style,
    bench_style_learning,
    bench_stylize,
    busiest_box,
    check_bench_deps,
    code_fingerprint,
    commit,
    auto_path,
    auto_path_under,
    cpu_isa,
    cpu_model,
    imgdiff_cli,
    load_photo_slice,
    load_set,
    log,
    mem_total_gib,
    env_text,
    s_per_mp,
    save_strip,
    speed_pairs,
    version_of,
)
from benchmarks import history as speed_history  # noqa: E402
from benchmarks.render import (  # noqa: E402
    camera_section,
    camera_upscale_section,
    grain_section,
    precision_section,
    crops_section,
    denoise_section,
    extra_sections,
    generate_section,
    machine_section,
    models_section,
    photo_section,
    speed_section,
    sr_section,
    steps_section,
    style_section,
    summary_lines,
)
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from imgdiff.defaults import DENOISE_ENSEMBLE  # noqa: E402

# isort: on


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Regenerate docs/BENCHMARKS.md (imgdiff through its CLI vs peers).")
    p.add_argument("--bench", type=Path, default=ROOT.parent / "shared" / "bench", help="benchmark image sets")
    p.add_argument("--peers", type=Path, default=ROOT.parent / "shared" / "peers", help="dnn_superres .pb models")
    p.add_argument("--quick", action="store_true", help="smoke run: first 3 images per set, no BM3D, no 9.4 MP test")
    p.add_argument("--bm3d-images", type=int, default=None, help="CBM3D on the first N images per set (default 6)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md", help="markdown file to write")
    p.add_argument(
        "--photos", type=Path, default=ROOT / "photos", help="build-photos.sh output (its held-out slice is measured)"
    )
    return p.parse_args(argv)


def speed_records(precision, den_rows, sr_rows, overhead, auto: str, no_amx_path: str | None) -> list[dict]:
    """This run's speed-target ratios, one record per CPU path measured (auto, no-AMX cap, AVX2 cap)."""
    pairs = speed_pairs(precision, den_rows, sr_rows)
    if len(pairs) < 2:
        return []
    paths = [("auto: " + auto, "auto", overhead[2] if overhead else None)]
    if no_amx_path:
        paths.append((f"capped {env_text(NO_AMX_ENV)}: {no_amx_path}", "no_amx", None))
    paths.append(("capped to AVX2: fp32", "avx2", None))
    records = []
    for label, attr, added in paths:
        if any(getattr(row, attr) is None for *_, row in pairs):
            continue
        record = {"path": label}
        record.update({key: round(s_per_mp(getattr(row, attr)) / ref, 3) for key, _, ref, row in pairs})
        record["overhead_s"] = None if added is None else round(added, 3)
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    check_bench_deps()
    for folder in (args.bench, args.peers):
        if not folder.is_dir():
            sys.exit(f"benchmarks/run.py: {folder} is not a folder (see --bench / --peers)")
    import torch

    torch.set_num_threads(CORES)
    cv2.setNumThreads(CORES)
    limit = 3 if args.quick else None
    bm3d_n = args.bm3d_images if args.bm3d_images is not None else (0 if args.quick else 6)
    out = args.out if args.out.is_absolute() else Path.cwd() / args.out
    crops = out.parent / "bench"
    command = "python benchmarks/run.py" + ("" if len(sys.argv) < 2 else " " + shlex.join(sys.argv[1:]))
    load_start = os.getloadavg()[0]
    revision, fingerprint = commit(out, crops), code_fingerprint()
    started = dt.datetime.now(dt.timezone.utc)

    startup = statistics.median(imgdiff_cli("--version").seconds for _ in range(3))
    log(f"start-up overhead {startup:.2f} s; {CORES} cores; CBM3D on {bm3d_n} images per set")
    crops.mkdir(parents=True, exist_ok=True)
    for old in [*crops.glob("*.png"), *crops.glob("*.jpg")]:
        old.unlink()  # every picture is regenerated; none may outlive its run
    with tempfile.TemporaryDirectory(prefix="imgdiff-bench-") as tmp_name:
        tmp = Path(tmp_name)
        den_rows = []
        for name, sigma in DENOISE_ROWS:
            log(f"denoise {name} sigma={sigma}")
            data = load_set(args.bench, name, limit)
            den_rows.append(bench_denoise(data, sigma, min(bm3d_n, len(data.images)), tmp))
            r = den_rows[-1]
            log(f"  imgdiff {r.mean('imgdiff'):.2f} dB, NL-means {r.mean('nlmeans'):.2f} dB")
        sr_rows = []
        for name, scale in SR_ROWS:
            log(f"upscale {name} x{scale}")
            sr_rows.append(bench_sr(load_set(args.bench, name, limit), scale, args.peers, tmp))
            log(f"  imgdiff {sr_rows[-1].mean('imgdiff'):.2f} dB, bicubic {sr_rows[-1].mean('bicubic'):.2f} dB")
        photo_den: list[DenoiseRow] = []
        photo_sr: list[SRRow] = []
        photo_set = load_photo_slice(args.photos, limit)
        if photo_set:
            for sigma in PHOTO_SIGMAS:
                log(f"denoise photo slice sigma={sigma}")
                n_bm3d = len(photo_set.images) if sigma == PHOTO_BM3D_SIGMA and not args.quick else 0
                photo_den.append(bench_denoise(photo_set, sigma, n_bm3d, tmp))
                log(f"  imgdiff {photo_den[-1].mean('imgdiff'):.2f} dB")
            for scale in PHOTO_SCALES:
                log(f"upscale photo slice x{scale}")
                photo_sr.append(bench_sr(photo_set, scale, args.peers, tmp))
        log("sampling steps")
        step_set = load_set(args.bench, "CBSD68", min(STEP_IMAGES, limit or STEP_IMAGES))
        step_rows = bench_steps(step_set, tmp, crops)
        log("real noise (RNI15)")
        rni = bench_real_noise(args.bench, tmp, crops)
        log("camera noise")
        camera = bench_camera(args.bench, limit, bm3d_n, tmp)
        log("film grain")
        grain = bench_grain(args.bench, limit, tmp)
        log("camera-degraded x4 upscaling")
        camera_sr = bench_camera_upscale(args.bench, limit, bm3d_n, tmp)
        log("real-photo upscaling (RNI15 crops)")
        real_sr = bench_real_upscale(args.bench, tmp, crops)
        log("noise-level estimation")
        noise = bench_noise_estimate(args.bench, limit)
        stylize = None
        if not args.quick:
            log("stylize first and cached run")
            stylize = bench_stylize(tmp)
        log("style transfer")
        style_rows = bench_style(args.photos, tmp, crops, limit)
        style_learning = None if args.quick else bench_style_learning(tmp)
        log("generated textures")
        generated = bench_generate(args.photos, tmp, crops, limit)
        big = None
        if not args.quick:
            log(f"large photo {BIG_SIZE[0]}x{BIG_SIZE[1]}")
            big = bench_big(args.bench, tmp)
        log("precision paths: every row in fp32, the speed rows with the ISA capped at AVX2")
        precision = bench_precision(args.bench, den_rows, sr_rows, limit, tmp)
        overhead = bench_call_overhead(tmp)

    den_strip = next((r for r in den_rows if r.dataset == "CBSD68" and r.sigma == 25), None)
    if den_strip:
        names = ["noisy", "nlmeans", *(["cbm3d"] if "cbm3d" in den_strip.panels else []), "imgdiff", "clean"]
        panels = [den_strip.panels[n] for n in names]
        save_strip(
            crops / f"denoise_cbsd68_s{den_strip.sigma}.png", panels, busiest_box(den_strip.panels["clean"], CROP)
        )
    sr_strip = next((r for r in sr_rows if r.dataset == "Set14" and r.scale == 4), None)
    sr_index = 0
    if sr_strip:
        sr_index = next((i for i, n in enumerate(sr_strip.names) if n.startswith("barbara")), 0)
        stem = Path(sr_strip.names[sr_index]).stem
        panels = [sr_strip.panels[m][sr_index] for m in ("bicubic", "FSRCNN", "LapSRN", "imgdiff", "hr")]
        save_strip(crops / f"sr_set14_x4_{stem}.png", panels, busiest_box(panels[-1], CROP))
    total = sum(p.stat().st_size for p in crops.iterdir() if p.suffix in (".png", ".jpg"))
    if total > 3 << 20:
        log(f"warning: pictures under {crops} total {total / 2**20:.1f} MiB (limit 3 MiB)")

    here = auto_path()
    no_amx_path = auto_path_under(NO_AMX_ENV) if any(r.no_amx is not None for r in precision) else None
    history = speed_history.load(crops)
    # a smoke run's 3 images per set are no speed record
    records = [] if args.quick else speed_records(precision, den_rows, sr_rows, overhead, here, no_amx_path)
    if records:
        run = {"date": started.strftime("%Y-%m-%d"), "commit": revision, "cpu": cpu_model()}
        history = speed_history.append(crops, [{**rec, **run} for rec in records])

    elapsed = time.perf_counter() - _T0
    end_revision, end_fingerprint = commit(out, crops), code_fingerprint()
    if end_fingerprint != fingerprint:
        log("warning: imgdiff/ or weights/ changed during the run; the results mix code versions")
    info = {
        "command": f"`{command}`",
        "commit": f"`{revision}`" + ("" if end_revision == revision else f" at start, `{end_revision}` at end"),
        "imgdiff/ + weights/ fingerprint": f"`{fingerprint}`"
        + (
            " (unchanged during the run)"
            if end_fingerprint == fingerprint
            else f" at start, `{end_fingerprint}` at end: **the code changed during the run; sections may have run "
            "against different versions — rerun on a quiet tree**"
        ),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {CORES} usable by this process (sched_getaffinity)",
        "memory": f"{mem_total_gib():.1f} GiB",
        "imgdiff precision (`--precision auto`)": f"{here}; denoise default `--ensemble {DENOISE_ENSEMBLE}`",
        "threads": f"torch {torch.__version__}, {torch.get_num_threads()} threads; OMP_NUM_THREADS={CORES}; "
        "the CLI uses its default (all usable cores)",
        "software": f"Python {platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__}, "
        f"bm3d {version_of('bm3d')}, Pillow {version_of('pillow')}",
        "imgdiff start-up (`python -m imgdiff --version`, median of 3)": f"{startup:.2f} s",
        "load average (1 min) at start / end": f"{load_start:.2f} / {os.getloadavg()[0]:.2f} "
        "(the machine may be shared; timings are wall clock)",
        "benchmark wall time": f"{elapsed / 60:.1f} min",
        "pictures": f"{len(list(crops.glob('*.png')))} PNG and {len(list(crops.glob('*.jpg')))} JPEG files "
        f"under `{crops.name}/`, {total / 1024:.0f} KiB",
    }
    md = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` — do not edit by hand.",
        "",
        "imgdiff is run through its CLI as a subprocess, exactly as a user would, with default settings, on 8-bit "
        "PNG inputs; peers run in process on the same images. Protocol and published figures: "
        "`../shared/bench/README.md`.",
        "",
        *summary_lines(den_rows, sr_rows),
        *denoise_section(den_rows, args.quick),
        *sr_section(sr_rows, args.quick),
        *photo_section(args.photos, photo_den, photo_sr),
        *models_section(ROOT / "weights"),
        *speed_section(den_rows, sr_rows, big, startup),
        *precision_section(precision, den_rows, sr_rows, overhead, cpu_isa(), no_amx_path, history),
        *steps_section(step_rows, len(step_set.images)),
        *camera_section(camera),
        *grain_section(grain),
        *camera_upscale_section(camera_sr),
        *crops_section(den_strip, sr_strip, sr_index, rni, real_sr),
        *extra_sections(noise, stylize),
        *style_section(style_rows, style_learning),
        *generate_section(generated),
        *machine_section(info),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(md).rstrip() + "\n")
    log(f"wrote {out} in {elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()
