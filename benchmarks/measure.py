"""The measurements behind docs/BENCHMARKS.md: imgdiff through its CLI, exactly as a user runs it,
beside peers, on the protocol of ../shared/bench/README.md. benchmarks/run.py orchestrates them and
benchmarks/render.py turns their rows into Markdown.

This is not `imgdiff eval`: the published comparison must include what a user pays (process
start-up, model load, PNG I/O) and peers that are no runtime dependency of imgdiff (CBM3D, OpenCV
dnn_superres). Every measured number is recomputed on each run; only the published figures below
are constants.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(CORES)  # before numpy/torch load (they read it once); inherited by the CLI
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python benchmarks/run.py` puts benchmarks/, not the repo, on the path

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from imgdiff.checkpoint import read_config  # noqa: E402
from imgdiff.eval.evaluate import NLM_H, MethodScores, add_noise, bicubic, load_u8, modcrop  # noqa: E402
from imgdiff.eval.metrics import psnr, psnr_y, rgb_to_y, ssim, texture_distance  # noqa: E402
from imgdiff.io import to_u8  # noqa: E402
from imgdiff.tasks import crop_zoom  # noqa: E402
from imgdiff.train.data import list_images, manifest_rows, split_images, zoom_levels  # noqa: E402

SEED = 0  # image i of a set gets noise seed SEED + i, as imgdiff/eval/evaluate.py does
DENOISE_ROWS = [("CBSD68", 15), ("CBSD68", 25), ("CBSD68", 50), ("Kodak24", 25), ("McMaster", 25)]
SR_ROWS = [("Set5", 4), ("Set14", 4), ("Set5", 2), ("Set14", 2)]
PHOTO_SIGMAS = (15, 25, 50)  # the held-out photo slice; CBM3D is measured on it at PHOTO_BM3D_SIGMA
PHOTO_BM3D_SIGMA = 25
PHOTO_SCALES = (4, 2)
PHOTO_CROP = 512  # centre crop of each held-out photograph (CBM3D takes ~70 s/MP)
PHOTO_SET = "photo-slice"
PEERS = ("FSRCNN", "ESPCN", "LapSRN")
STEP_COUNTS = (1, 2, 4, 8)
STEP_IMAGES = 8
RNI_IMAGES = 3
NOISE_SIGMAS = (5, 10, 15, 25, 35, 50)
CROP = 192  # side of the before/after crops (docs/bench must stay small)
STEP_CROP = 160
BIG_SIZE = (3760, 2500)  # 9.4 MP, a typical camera photo
INSTALL_HINT = "pip install opencv-contrib-python-headless==5.0.0.93 bm3d==4.0.3  (or: pip install -e '.[bench]')"

# Published PSNR (dB). Denoising and x4 SR: the "Published figures" tables of
# ../shared/bench/README.md. x2 SR (not in that README): bicubic, SRCNN (Dong et al., TPAMI 2016)
# and EDSR (Lim et al., CVPRW 2017) Set5/Set14 figures as quoted in the benchmark brief.
PUBLISHED_DENOISE: dict[tuple[str, int], dict[str, float]] = {
    ("CBSD68", 15): {"CBM3D": 33.52, "FFDNet": 33.87, "DRUNet": 34.30},
    ("CBSD68", 25): {"CBM3D": 30.71, "FFDNet": 31.21, "DRUNet": 31.69},
    ("CBSD68", 50): {"CBM3D": 27.38, "FFDNet": 27.96, "DRUNet": 28.51},
    ("Kodak24", 25): {"CBM3D": 31.68, "FFDNet": 32.13, "DRUNet": 32.89},
    ("McMaster", 25): {"CBM3D": 31.66, "FFDNet": 32.35, "DRUNet": 33.14},
}
PUBLISHED_SR: dict[tuple[str, int], dict[str, float]] = {
    ("Set5", 4): {"bicubic": 28.42, "SRCNN": 30.48, "FSRCNN": 30.72, "EDSR": 32.46},
    ("Set14", 4): {"bicubic": 26.00, "SRCNN": 27.50, "FSRCNN": 27.61, "EDSR": 28.80},
    ("Set5", 2): {"bicubic": 33.66, "SRCNN": 36.66, "EDSR": 38.11},
    ("Set14", 2): {"bicubic": 30.24, "SRCNN": 32.42, "EDSR": 33.92},
}
DENOISE_TARGET = "CBM3D"  # the published method imgdiff must exceed, per row kind
SR_TARGET = {4: "FSRCNN", 2: "SRCNN"}

_T0 = time.perf_counter()


def log(msg: str) -> None:
    """Progress on stderr, so a 20-minute run is not silent."""
    print(f"[{time.perf_counter() - _T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def check_bench_deps() -> None:
    """Fail early with the fix: CBM3D and dnn_superres are benchmark-only dependencies."""
    missing = []
    if not hasattr(cv2, "dnn_superres"):
        missing.append("opencv-contrib-python-headless (for cv2.dnn_superres)")
    if importlib.util.find_spec("bm3d") is None:
        missing.append("bm3d (for CBM3D)")
    if missing:
        sys.exit(f"benchmarks/run.py: missing benchmark-only dependencies: {', '.join(missing)}\n  {INSTALL_HINT}")


# --- the CLI under test -------------------------------------------------------------------------


@dataclass
class CliRun:
    """One imgdiff process: wall seconds, its own peak resident memory, and its stdout."""

    seconds: float
    peak_rss_bytes: int
    stdout: str


def imgdiff_cli(*args: str, env: dict[str, str] | None = None) -> CliRun:
    """Run `python -m imgdiff ARGS` from the repo root as a user would; raise with its stderr on failure.

    os.wait4 returns this child's own rusage, so its peak RSS is not mixed with earlier children's.
    """
    cmd = [sys.executable, "-m", "imgdiff", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"`{shlex.join(cmd)}` failed with exit code {proc.returncode}:\n{stderr.strip()}")
    if stderr.strip():
        log(f"imgdiff stderr: {stderr.strip()}")
    return CliRun(seconds, usage.ru_maxrss * 1024, stdout)


def read_outputs(folder: Path, names: list[str]) -> list[np.ndarray]:
    """The CLI's result for every input; a missing one is a failure, not a silent gap."""
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise RuntimeError(f"imgdiff wrote no output for {', '.join(missing)} in {folder}")
    return [load_u8(folder / n) for n in names]


# --- data ---------------------------------------------------------------------------------------


@dataclass
class ImageSet:
    name: str
    names: list[str]  # PNG file names used for the CLI's inputs and outputs
    images: list[np.ndarray]  # uint8 RGB
    total: int  # images in the full set (for "6 of 68")

    @property
    def size(self) -> str:
        """'500x500' when every image has one size (either orientation), else 'mixed sizes'."""
        sizes = {tuple(sorted(a.shape[:2], reverse=True)) for a in self.images}
        return "x".join(map(str, sizes.pop())) if len(sizes) == 1 else "mixed sizes"


def load_set(bench: Path, name: str, limit: int | None) -> ImageSet:
    paths = list_images(bench / name)
    if not paths:
        sys.exit(f"benchmarks/run.py: no images in {bench / name} (see --bench)")
    chosen = paths[:limit]
    return ImageSet(name, [p.stem + ".png" for p in chosen], [load_u8(p) for p in chosen], len(paths))


def load_photo_slice(photos: Path, limit: int | None, crop: int = PHOTO_CROP) -> ImageSet | None:
    """The held-out validation slice of build-photos.sh's folder (the split the trainer uses), centre-cropped.

    Never trained on, and the only natural-photo figure the project can compute itself.
    """
    if not photos.is_dir():
        return None
    all_held = split_images(photos)[1]
    held = all_held[:limit]
    if not held:
        return None
    images = []
    for p in held:
        a = load_u8(p)
        h, w = a.shape[:2]
        s = min(crop, h, w) // 4 * 4
        images.append(np.ascontiguousarray(a[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]))
    return ImageSet(PHOTO_SET, [p.stem + ".png" for p in held], images, len(all_held))


def megapixels(a: np.ndarray) -> float:
    return a.shape[0] * a.shape[1] / 1e6


def write_pngs(folder: Path, names: list[str], images: list[np.ndarray]) -> None:
    """8-bit PNG inputs for the CLI (fast compression: these are temporary)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, a in zip(names, images, strict=True):
        Image.fromarray(a).save(folder / n, compress_level=1)


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


# --- crops for the docs -------------------------------------------------------------------------


def busiest_box(a: np.ndarray, size: int) -> tuple[int, int, int]:
    """(y, x, side) of the most textured square of `a`: flat crops show no difference between methods."""
    y_img = rgb_to_y(a)
    side = min(size, a.shape[0], a.shape[1])
    step = max(side // 4, 1)
    best, box = -1.0, (0, 0, side)
    for y in range(0, a.shape[0] - side + 1, step):
        for x in range(0, a.shape[1] - side + 1, step):
            win = y_img[y : y + side, x : x + side]
            energy = float(np.abs(np.diff(win, axis=0)).mean() + np.abs(np.diff(win, axis=1)).mean())
            if energy > best:
                best, box = energy, (y, x, side)
    return box


def save_strip(path: Path, panels: list[np.ndarray], box: tuple[int, int, int]) -> None:
    """The same square of every panel, left to right, 4 px white gaps (write_grid is 3-column only).

    A .jpg path is written at quality 90: the style strips are textures, which PNG cannot shrink
    (470 KB each), and the docs' pictures stay under 3 MiB."""
    y, x, side = box
    gap = 4
    canvas = np.full((side, len(panels) * (side + gap) - gap, 3), 255, np.uint8)
    for i, p in enumerate(panels):
        canvas[:, i * (side + gap) : i * (side + gap) + side] = p[y : y + side, x : x + side]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jpg":
        Image.fromarray(canvas).save(path, quality=90, optimize=True)
    else:
        Image.fromarray(canvas).save(path, optimize=True)


# --- denoising ----------------------------------------------------------------------------------


@dataclass
class DenoiseRow:
    dataset: str
    sigma: int
    images: int
    total: int
    size: str
    bm3d_images: int
    scores: dict[str, MethodScores]
    panels: dict[str, np.ndarray] = field(default_factory=dict)  # first image, for the crop strip

    def mean(self, method: str, first: int | None = None) -> float:
        return float(np.mean(self.scores[method].psnr[:first]))


def s_per_mp(s: MethodScores) -> float:
    return s.seconds / max(s.megapixels, 1e-9)


def bench_denoise(data: ImageSet, sigma: int, bm3d_n: int, tmp: Path) -> DenoiseRow:
    """noisy / NL-means / CBM3D (first bm3d_n images) in process, then imgdiff through its CLI."""
    import bm3d

    methods = ("noisy", "nlmeans", "cbm3d", "imgdiff")
    scores = {m: MethodScores() for m in methods}
    noisy = [add_noise(c.astype(np.float64), sigma, SEED + i) for i, c in enumerate(data.images)]
    panels: dict[str, np.ndarray] = {"noisy": noisy[0], "clean": data.images[0]}
    h = NLM_H * sigma
    for i, (clean, n) in enumerate(zip(data.images, noisy, strict=True)):
        mp = megapixels(clean)
        scores["noisy"].add(psnr(n, clean), ssim(n, clean), 0.0, mp)
        nlm, sec = timed(lambda n=n: cv2.fastNlMeansDenoisingColored(n, None, h, h, 7, 21))
        scores["nlmeans"].add(psnr(nlm, clean), ssim(nlm, clean), sec, mp)
        panels.setdefault("nlmeans", nlm)
        if i < bm3d_n:
            est, sec = timed(lambda n=n: bm3d.bm3d_rgb(n / 255.0, sigma / 255.0))
            den = to_u8(est)  # 8 bits, like every other method's output
            scores["cbm3d"].add(psnr(den, clean), ssim(den, clean), sec, mp)
            panels.setdefault("cbm3d", den)
            log(f"  CBM3D {data.name} sigma={sigma} image {i + 1}/{bm3d_n}: {sec:.1f} s")
    scores["imgdiff"], outs = imgdiff_denoise(data, sigma, tmp)
    panels["imgdiff"] = outs[0]
    return DenoiseRow(data.name, sigma, len(data.images), data.total, data.size, bm3d_n, scores, panels)


def imgdiff_denoise(
    data: ImageSet,
    sigma: int,
    tmp: Path,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    tag: str = "",
    told: bool = True,
) -> tuple[MethodScores, list[np.ndarray]]:
    """`imgdiff denoise DIR -o OUT --sigma S ARGS` on the set's noisy images (the same seeds every time);
    told=False leaves `--sigma` out, as a user who types no options does: the CLI then reads the noise."""
    src, dst = tmp / f"{data.name}_s{sigma}{tag}", tmp / f"{data.name}_s{sigma}{tag}_out"
    write_pngs(src, data.names, [add_noise(c.astype(np.float64), sigma, SEED + i) for i, c in enumerate(data.images)])
    sigma_args = ("--sigma", str(sigma)) if told else ()
    run = imgdiff_cli("denoise", str(src), "-o", str(dst), *sigma_args, "-q", *args, env=env)
    outs = read_outputs(dst, data.names)
    scores = MethodScores()
    for clean, out in zip(data.images, outs, strict=True):
        scores.add(psnr(out, clean), ssim(out, clean), 0.0, megapixels(clean))
    scores.seconds = run.seconds
    return scores, outs


# --- super-resolution ---------------------------------------------------------------------------


@dataclass
class SRRow:
    dataset: str
    scale: int
    images: int
    total: int
    scores: dict[str, MethodScores]
    names: list[str]
    panels: dict[str, list[np.ndarray]]  # every method's outputs, for one crop strip

    def mean(self, method: str) -> float:
        return float(np.mean(self.scores[method].psnr))


def bench_sr(data: ImageSet, scale: int, peers: Path, tmp: Path) -> SRRow:
    """bicubic and the dnn_superres peers in process, then imgdiff through its CLI; Y-PSNR, `scale` px shaved."""
    s = scale
    methods = ("bicubic", *PEERS, "imgdiff")
    scores = {m: MethodScores() for m in methods}
    panels: dict[str, list[np.ndarray]] = {m: [] for m in (*methods, "hr")}
    hrs, lrs = sr_pairs(data, s)

    def add(method: str, out: np.ndarray, hr: np.ndarray, seconds: float) -> None:
        add_sr(scores[method], out, hr, s, seconds)
        panels[method].append(out)

    models = {}
    for name in PEERS:
        model_file = peers / f"{name}_x{s}.pb"
        if not model_file.is_file():
            sys.exit(f"benchmarks/run.py: {model_file} is missing (see --peers)")
        sr = cv2.dnn_superres.DnnSuperResImpl_create()
        sr.readModel(str(model_file))
        sr.setModel(name.lower(), s)
        models[name] = sr
    for hr, lr in zip(hrs, lrs, strict=True):
        out, sec = timed(lambda hr=hr, lr=lr: bicubic(lr, (hr.shape[1], hr.shape[0])))
        add("bicubic", out, hr, sec)
        bgr = np.ascontiguousarray(lr[..., ::-1])
        for name, sr in models.items():
            out, sec = timed(lambda sr=sr, bgr=bgr: np.ascontiguousarray(sr.upsample(bgr)[..., ::-1]))
            add(name, out, hr, sec)
        panels["hr"].append(hr)
    scores["imgdiff"], outs = imgdiff_upscale(data, s, tmp)
    panels["imgdiff"] = outs
    return SRRow(data.name, s, len(data.images), data.total, scores, data.names, panels)


def add_sr(scores: MethodScores, out: np.ndarray, hr: np.ndarray, s: int, seconds: float) -> None:
    """Y-PSNR and Y-SSIM with s pixels shaved (the SR protocol)."""
    y_ssim = ssim(rgb_to_y(out)[s:-s, s:-s], rgb_to_y(hr)[s:-s, s:-s])
    scores.add(psnr_y(out, hr, s), y_ssim, seconds, megapixels(hr))


def sr_pairs(data: ImageSet, s: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    hrs = [modcrop(a, s) for a in data.images]
    return hrs, [bicubic(hr, (hr.shape[1] // s, hr.shape[0] // s)) for hr in hrs]


def imgdiff_upscale(
    data: ImageSet, s: int, tmp: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None, tag: str = ""
) -> tuple[MethodScores, list[np.ndarray]]:
    """`imgdiff upscale DIR -o OUT --scale S ARGS` on the set's bicubic downscales; Y-PSNR, S px shaved."""
    hrs, lrs = sr_pairs(data, s)
    src, dst = tmp / f"{data.name}_x{s}{tag}", tmp / f"{data.name}_x{s}{tag}_out"
    write_pngs(src, data.names, lrs)
    run = imgdiff_cli("upscale", str(src), "-o", str(dst), "--scale", str(s), "-q", *args, env=env)
    outs = read_outputs(dst, data.names)
    scores = MethodScores()
    for hr, out in zip(hrs, outs, strict=True):
        add_sr(scores, out, hr, s, 0.0)
    scores.seconds = run.seconds
    return scores, outs


# --- precision paths and instruction sets (issue 16) --------------------------------------------

# a laptop-class CPU: PyTorch's own kernels and oneDNN's both capped at AVX2 (no AVX-512, no bf16)
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# on an AMX Xeon, oneDNN capped at a Zen 4's ISA (AVX-512 with bf16 and VNNI dot products, no AMX):
# the speed targets are set for CPUs without AMX, so a run on one with it measures that path too
NO_AMX_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}
SPEED_ROWS = (("CBSD68", 25), ("Set14", 4))  # the two rows the speed targets are read on
UNTOLD = "denoise, no options"  # the speed row again without --sigma: what `imgdiff denoise photo.png` costs


def env_text(env: dict[str, str]) -> str:
    """An ISA cap as a shell prefix: 'ONEDNN_MAX_CPU_ISA=AVX2 ...'."""
    return " ".join(f"{k}={v}" for k, v in env.items())


@dataclass
class PrecisionRow:
    dataset: str
    kind: str  # "denoise" or "upscale"
    param: int  # sigma or scale
    auto: MethodScores  # the default path (the main tables' run)
    fp32: MethodScores
    avx2: MethodScores | None  # fp32 on AVX2 kernels (speed rows only)
    no_amx: MethodScores | None = None  # auto with AMX capped away (speed rows, on AMX machines only)


def bench_precision(bench: Path, den_rows: list, sr_rows: list, limit: int | None, tmp: Path) -> list[PrecisionRow]:
    """Every main-table row again with --precision fp32 (the quality reference), and the speed rows
    once more with the ISA capped at AVX2, where --precision auto picks fp32 (and, on an AMX CPU,
    capped at AVX512-BF16, the path of the CPUs without AMX)."""
    from imgdiff.device import cpu_has_amx

    jobs = [(r.dataset, "denoise", r.sigma, imgdiff_denoise, r.scores["imgdiff"]) for r in den_rows]
    jobs += [(r.dataset, "upscale", r.scale, imgdiff_upscale, r.scores["imgdiff"]) for r in sr_rows]
    # the denoise speed row once more with no --sigma: the no-options call reads the noise first, and
    # that reading is part of what a user waits for (its auto run is new, not the main table's)
    untold = next((r for r in den_rows if (r.dataset, r.sigma) in SPEED_ROWS), None)
    if untold:
        jobs.append((untold.dataset, UNTOLD, untold.sigma, functools.partial(imgdiff_denoise, told=False), None))
    rows = []
    for dataset, kind, param, run, auto in jobs:
        data = load_set(bench, dataset, limit)
        pre = "_untold" if kind == UNTOLD else ""  # its own folders: the told row ran the same images
        if auto is None:
            auto = run(data, param, tmp, tag=f"{pre}_auto")[0]
        fp32, _ = run(data, param, tmp, ("--precision", "fp32"), tag=f"{pre}_fp32")
        avx2 = no_amx = None
        if (dataset, param) in SPEED_ROWS:
            avx2 = run(data, param, tmp, env=AVX2_ENV, tag=f"{pre}_avx2")[0]
            no_amx = run(data, param, tmp, env=NO_AMX_ENV, tag=f"{pre}_noamx")[0] if cpu_has_amx() else None
        rows.append(PrecisionRow(dataset, kind, param, auto, fp32, avx2, no_amx))
        log(f"  {kind} {dataset} {param}: {np.mean(auto.psnr) - np.mean(fp32.psnr):+.3f} dB vs fp32")
    return rows


def speed_pairs(rows: list[PrecisionRow], den: list, sr: list) -> list[tuple[str, str, float, PrecisionRow]]:
    """The speed targets as (record key, label, the peer's s/MP, imgdiff's precision row), for
    those this run measured: default denoise (told σ, and with no options) vs NL-means, x4 upscale vs LapSRN."""
    den_main = next((d for d in den if (d.dataset, d.sigma) == ("CBSD68", 25)), None)  # NL-means' time
    targets = [
        ("denoise_vs_nlmeans", "denoise CBSD68 σ=25 vs NL-means", den_main, "nlmeans", ("denoise", "CBSD68", 25)),
        (
            "denoise_untold_vs_nlmeans",
            "denoise CBSD68 σ=25, no options (noise read from the image) vs NL-means",
            den_main,
            "nlmeans",
            (UNTOLD, "CBSD68", 25),
        ),
        (
            "x4_vs_lapsrn",
            "upscale x4 Set14 vs LapSRN",
            next((u for u in sr if (u.dataset, u.scale) == ("Set14", 4)), None),
            "LapSRN",
            ("upscale", "Set14", 4),
        ),
    ]
    pairs = []
    for key, label, main, peer, row_key in targets:
        row = next((r for r in rows if (r.kind, r.dataset, r.param) == row_key), None)
        if main and row:
            pairs.append((key, label, s_per_mp(main.scores[peer]), row))
    return pairs


def bench_call_overhead(tmp: Path, pairs: int = 7) -> tuple[float, float, float]:
    """A whole `imgdiff denoise` of a 64x64 image and `python -c 'import torch'`, run in interleaved
    pairs so both see the same load: (median call, median import, median of the paired differences).
    On a shared VM the two medians of 3 unpaired runs moved the difference between 0.25 and 0.40 s."""
    src = tmp / "tiny64.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(src)
    calls, imports = [], []
    for i in range(pairs):
        calls.append(
            imgdiff_cli("denoise", str(src), "-o", str(tmp / f"tiny64_{i}.png"), "--sigma", "25", "-q").seconds
        )
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        imports.append(time.perf_counter() - t0)
    added = statistics.median(c - t for c, t in zip(calls, imports, strict=True))
    return statistics.median(calls), statistics.median(imports), added


# --- sampling steps, real noise, large image ----------------------------------------------------


@dataclass
class StepRow:
    steps: int
    psnr: float
    s_per_mp: float
    crop: str  # file name under the crop folder


def bench_steps(data: ImageSet, tmp: Path, crops: Path) -> list[StepRow]:
    """More ancestral steps trade PSNR for texture; measure both sides of that trade and show it."""
    sigma = 25
    noisy = [add_noise(c.astype(np.float64), sigma, SEED + i) for i, c in enumerate(data.images)]
    src = tmp / "steps"
    write_pngs(src, data.names, noisy)
    mp = sum(megapixels(a) for a in data.images)
    box = busiest_box(data.images[0], STEP_CROP)
    rows = []
    for n in STEP_COUNTS:
        dst = tmp / f"steps_{n}_out"
        run = imgdiff_cli(
            "denoise", str(src), "-o", str(dst), "--sigma", str(sigma), "--steps", str(n), "--seed", "0", "-q"
        )
        outs = read_outputs(dst, data.names)
        crop = f"steps_{n}.png"
        save_strip(crops / crop, [outs[0]], box)
        value = float(np.mean([psnr(o, c) for o, c in zip(outs, data.images, strict=True)]))
        rows.append(StepRow(n, value, run.seconds / mp, crop))
        log(f"  steps={n}: {value:.2f} dB, {run.seconds / mp:.2f} s/MP")
    save_strip(crops / "steps_noisy.png", [noisy[0]], box)
    save_strip(crops / "steps_clean.png", [data.images[0]], box)
    return rows


@dataclass
class RealNoise:
    name: str
    reading: str  # what the default's noise reading decided: kind, model and sigma
    crop: str


def default_reading(rec: dict) -> str:
    """'camera noise → real-photo model' or 'white noise → Gaussian model, σ 12.3', from a --json record."""
    model = "real-photo" if rec.get("mode") == "real" else "Gaussian"
    sigma = f", σ {float(rec['sigma']):.1f}" if rec.get("sigma") is not None else ""
    return f"{rec.get('noise', '?')} noise → {model} model{sigma}"


def bench_real_noise(bench: Path, tmp: Path, crops: Path) -> list[RealNoise]:
    """Real noisy photos, no ground truth, judged by eye: the default (its noise reading picks the model)
    and the blind real-photo mode (`--mode real`) side by side."""
    data = load_set(bench, "RNI15", RNI_IMAGES)
    src = tmp / "rni"
    write_pngs(src, data.names, data.images)
    run = imgdiff_cli("denoise", str(src), "-o", str(tmp / "rni_gauss"), "-q", "--json")
    imgdiff_cli("denoise", str(src), "-o", str(tmp / "rni_real"), "--mode", "real", "-q")
    readings = {}
    for line in run.stdout.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        readings[Path(rec.get("input", "")).name] = default_reading(rec)
    results = []
    gauss, real = read_outputs(tmp / "rni_gauss", data.names), read_outputs(tmp / "rni_real", data.names)
    for name, before, g, r in zip(data.names, data.images, gauss, real, strict=True):
        crop = f"rni15_{Path(name).stem.lower()}.png"
        save_strip(crops / crop, [before, g, r], busiest_box(before, CROP))
        results.append(RealNoise(Path(name).stem, readings.get(name, "no JSON record"), crop))
    return results


CAMERA_SETS = ("Kodak24", "McMaster")


@dataclass
class CameraRow:
    """One set at one ISO through the benchmark camera: per method, PSNR/SSIM to the clean reference
    (shave px trimmed) and the texture ratio on each reference's most textured square."""

    dataset: str
    iso: str
    methods: tuple[str, ...]
    images: int
    bm3d_images: int
    true_sigma: float  # mean over images of std(noisy - clean) of the camera's output, 0..255
    shave: int = 0
    scores: dict[str, MethodScores] = field(init=False)
    texture: dict[str, list[float]] = field(init=False)

    def __post_init__(self) -> None:
        self.scores = {m: MethodScores() for m in self.methods}
        self.texture = {m: [] for m in self.methods}

    def add(self, method: str, out: np.ndarray, ref: np.ndarray, box, seconds: float = 0.0) -> None:
        from benchmarks.camera import texture_ratio

        s = self.shave
        o, r = (out[s:-s, s:-s], ref[s:-s, s:-s]) if s else (out, ref)
        self.scores[method].add(psnr(o, r), ssim(o, r), seconds, megapixels(ref))
        self.texture[method].append(texture_ratio(out, ref, box))

    def run_imgdiff(self, command: list[str], src: Path, names: list[str], refs: list[np.ndarray], boxes) -> None:
        """`imgdiff COMMAND SRC` by default (method "imgdiff") and, where the row has the method, with
        --mode real ("imgdiff-real"), --mode gaussian ("imgdiff-gaussian") or the camera-noise texture
        knob --steps 4 ("imgdiff-steps4")."""
        variants = [("imgdiff", []), ("imgdiff-real", ["--mode", "real"]), ("imgdiff-gaussian", ["--mode", "gaussian"])]
        variants.append(("imgdiff-steps4", ["--steps", "4"]))
        for method, extra in (v for v in variants if v[0] in self.methods):
            dst = src.with_name(f"{src.name}_{method}")
            run = imgdiff_cli(command[0], str(src), "-o", str(dst), "-q", *command[1:], *extra)
            for ref, out, box in zip(refs, read_outputs(dst, names), boxes, strict=True):
                self.add(method, out, ref, box)
            self.scores[method].seconds = run.seconds

    def mean(self, method: str, first: int | None = None) -> float:
        return float(np.mean(self.scores[method].psnr[:first]))


def score_denoisers(row: CameraRow, cleans, noisy, sigmas, boxes, names: list[str], src: Path) -> None:
    """Each noisy image as it is, through NL-means (and CBM3D on the row's first images) given its true
    noise std, then through imgdiff (the row's variants, from PNGs written to src)."""
    import bm3d

    for i, (c, n, sg, box) in enumerate(zip(cleans, noisy, sigmas, boxes, strict=True)):
        row.add("input", n, c, box)
        h = NLM_H * sg
        nlm, sec = timed(lambda n=n, h=h: cv2.fastNlMeansDenoisingColored(n, None, h, h, 7, 21))
        row.add("nlmeans", nlm, c, box, sec)
        if i < row.bm3d_images:
            est, sec = timed(lambda n=n, sg=sg: to_u8(bm3d.bm3d_rgb(n / 255.0, sg / 255.0)))
            row.add("cbm3d", est, c, box, sec)
    write_pngs(src, names, noisy)
    row.run_imgdiff(["denoise"], src, names, cleans, boxes)


def bench_camera(bench: Path, limit: int | None, bm3d_n: int, tmp: Path) -> list[CameraRow]:
    """Bench images through the benchmark's own camera (benchmarks/camera.py) at three ISO levels: the
    input, NL-means and CBM3D given the true noise std, default `imgdiff denoise` and `--mode real`."""

    from benchmarks.camera import ISO_LEVELS, even, most_textured_box, record

    rows = []
    for name in CAMERA_SETS:
        data = load_set(bench, name, limit)
        cleans = [even(a) for a in data.images]
        boxes = [most_textured_box(c) for c in cleans]
        for k, iso in enumerate(ISO_LEVELS):
            noisy = [record(c, iso, SEED + 1000 * k + i) for i, c in enumerate(cleans)]
            sigmas = [float((n.astype(np.float64) - c).std()) for n, c in zip(noisy, cleans, strict=True)]
            methods = ("input", "nlmeans", "cbm3d", "imgdiff", "imgdiff-real", "imgdiff-steps4")
            row = CameraRow(name, iso, methods, len(cleans), min(bm3d_n, len(cleans)), float(np.mean(sigmas)))
            score_denoisers(row, cleans, noisy, sigmas, boxes, data.names, tmp / f"cam_{name}_{k}")
            rows.append(row)
            log(
                f"  {name} {iso} (true sigma {row.true_sigma:.1f}): input {row.mean('input'):.2f}, "
                f"imgdiff {row.mean('imgdiff'):.2f}, --mode real {row.mean('imgdiff-real'):.2f}, "
                f"--steps 4 {row.mean('imgdiff-steps4'):.2f}, "
                f"CBM3D {row.mean('cbm3d', row.bm3d_images):.2f} dB on {row.bm3d_images}"
            )
    return rows


GRAIN_SETS = ("Kodak24",)  # 768x512: the 4x4 test of the noise reading needs 512 px on the short side


def bench_grain(bench: Path, limit: int | None, tmp: Path) -> list[CameraRow]:
    """Bench images as scanned film (benchmarks/camera.py::film_scan: blurred grain under fine white
    noise): the input, NL-means given the true noise std, default `imgdiff denoise`, and the two models
    it chooses between (`--mode gaussian` at the estimated sigma, `--mode real`)."""
    from benchmarks.camera import GRAIN_LEVELS, film_scan, most_textured_box

    rows = []
    for name in GRAIN_SETS:
        data = load_set(bench, name, limit)
        cleans, boxes = data.images, [most_textured_box(c) for c in data.images]
        for k, level in enumerate(GRAIN_LEVELS):
            noisy = [film_scan(c, level, SEED + 1000 * k + i) for i, c in enumerate(cleans)]
            sigmas = [float((n.astype(np.float64) - c).std()) for n, c in zip(noisy, cleans, strict=True)]
            methods = ("input", "nlmeans", "imgdiff", "imgdiff-gaussian", "imgdiff-real")
            row = CameraRow(name, level, methods, len(cleans), 0, float(np.mean(sigmas)))
            score_denoisers(row, cleans, noisy, sigmas, boxes, data.names, tmp / f"grain_{name}_{k}")
            rows.append(row)
            log(
                f"  {name} {level}: input {row.mean('input'):.2f}, imgdiff {row.mean('imgdiff'):.2f}, "
                f"--mode gaussian {row.mean('imgdiff-gaussian'):.2f}, --mode real {row.mean('imgdiff-real'):.2f}"
            )
    return rows


CAMERA_SR_SCALE = 4


def bench_camera_upscale(bench: Path, limit: int | None, bm3d_n: int, tmp: Path) -> list[CameraRow]:
    """x4 upscaling of camera-recorded low-resolution images: each bench image is bicubic-downscaled x4
    and then recorded by the benchmark's camera (benchmarks/camera.py) at three ISO levels. Bicubic,
    bicubic then CBM3D (given the true noise std of the upscaled image), CBM3D on the LR image (its true
    std) then bicubic, and `imgdiff upscale --scale 4` by default and with `--mode real`; RGB PSNR/SSIM
    with 4 px shaved, texture ratio on the HR image's most textured square."""
    import bm3d

    from benchmarks.camera import ISO_LEVELS, most_textured_box, record

    s = CAMERA_SR_SCALE
    rows = []
    for name in CAMERA_SETS:
        data = load_set(bench, name, limit)
        hrs = [modcrop(a, 2 * s) for a in data.images]  # LR sides even, for the Bayer mosaic
        clean_lrs = [bicubic(hr, (hr.shape[1] // s, hr.shape[0] // s)) for hr in hrs]
        boxes = [most_textured_box(hr) for hr in hrs]
        for k, iso in enumerate(ISO_LEVELS):
            lrs = [record(lr, iso, SEED + 1000 * k + i) for i, lr in enumerate(clean_lrs)]
            sigmas = [float((n.astype(np.float64) - c).std()) for n, c in zip(lrs, clean_lrs, strict=True)]
            methods = ("bicubic", "bicubic-cbm3d", "cbm3d-bicubic", "imgdiff", "imgdiff-real")
            row = CameraRow(name, iso, methods, len(hrs), min(bm3d_n, len(hrs)), float(np.mean(sigmas)), shave=s)
            for i, (hr, lr, clean_lr, sg, box) in enumerate(zip(hrs, lrs, clean_lrs, sigmas, boxes, strict=True)):
                size = (hr.shape[1], hr.shape[0])
                up = bicubic(lr, size)
                row.add("bicubic", up, hr, box)
                if i < row.bm3d_images:
                    up_sigma = float((up.astype(np.float64) - bicubic(clean_lr, size)).std())
                    est, sec = timed(lambda up=up, sg=up_sigma: to_u8(bm3d.bm3d_rgb(up / 255.0, sg / 255.0)))
                    row.add("bicubic-cbm3d", est, hr, box, sec)
                    est, sec = timed(
                        lambda lr=lr, sg=sg, size=size: bicubic(to_u8(bm3d.bm3d_rgb(lr / 255.0, sg / 255.0)), size)
                    )
                    row.add("cbm3d-bicubic", est, hr, box, sec)
            src = tmp / f"camsr_{name}_{k}"
            write_pngs(src, data.names, lrs)
            row.run_imgdiff(["upscale", "--scale", str(s)], src, data.names, hrs, boxes)
            rows.append(row)
            n = row.bm3d_images
            log(
                f"  {name} {iso} x{s} (LR true sigma {row.true_sigma:.1f}): bicubic {row.mean('bicubic'):.2f}, "
                f"imgdiff {row.mean('imgdiff'):.2f}, --mode real {row.mean('imgdiff-real'):.2f}, "
                f"bicubic+CBM3D {row.mean('bicubic-cbm3d', n):.2f} dB on {n}"
            )
    return rows


REAL_SR_LR = 64  # side of the RNI15 crop upscaled x4 for the real-photo upscaling strips


def bench_real_upscale(bench: Path, tmp: Path, crops: Path) -> list[str]:
    """x4 upscaling of real noisy photos (the most textured 64x64 crop of each): bicubic, the default
    bicubic-degradation model and `--mode real`, side by side; returns the strip file names."""
    data = load_set(bench, "RNI15", RNI_IMAGES)
    lows = []
    for a in data.images:
        y, x, side = busiest_box(a, REAL_SR_LR)
        lows.append(np.ascontiguousarray(a[y : y + side, x : x + side]))
    src = tmp / "rni_lr"
    write_pngs(src, data.names, lows)
    imgdiff_cli("upscale", str(src), "-o", str(tmp / "rni_sr"), "--scale", "4", "-q")
    imgdiff_cli("upscale", str(src), "-o", str(tmp / "rni_sr_real"), "--scale", "4", "--mode", "real", "-q")
    default, real = read_outputs(tmp / "rni_sr", data.names), read_outputs(tmp / "rni_sr_real", data.names)
    strips = []
    for name, low, d, r in zip(data.names, lows, default, real, strict=True):
        side = d.shape[0]
        crop = f"rni15_x4_{Path(name).stem.lower()}.png"
        save_strip(crops / crop, [bicubic(low, (d.shape[1], side)), d, r], (0, 0, min(side, d.shape[1])))
        strips.append(crop)
    return strips


@dataclass
class NoiseEstimate:
    sigma: int
    mean_error: float
    max_abs_error: float
    within_2: int
    images: int


def bench_noise_estimate(bench: Path, limit: int | None) -> list[NoiseEstimate]:
    """`--sigma auto` is `imgdiff.noise.estimate_sigma`, called here on the same 8-bit noisy images."""
    from imgdiff.noise import estimate_sigma

    data = load_set(bench, "CBSD68", limit)
    rows = []
    for sigma in NOISE_SIGMAS:
        err = np.array(
            [
                estimate_sigma((add_noise(c.astype(np.float64), sigma, SEED + i) / 255).astype(np.float32)) - sigma
                for i, c in enumerate(data.images)
            ]
        )
        rows.append(
            NoiseEstimate(sigma, float(err.mean()), float(np.abs(err).max()), int((np.abs(err) <= 2).sum()), len(err))
        )
        log(f"  sigma={sigma}: mean error {err.mean():+.2f}, max |error| {np.abs(err).max():.2f}")
    return rows


def first_and_cached(content: Path, style: Path, tmp: Path, name: str) -> tuple[float, float]:
    """Wall seconds of `imgdiff stylize` learning the style in a fresh cache, then with it cached."""
    with fresh_style_cache(tmp / f"{name}-cache"):
        args = ["stylize", str(content), "--style", str(style), "-q", "--overwrite"]
        first = imgdiff_cli(*args, "-o", str(tmp / f"{name}1.png")).seconds
        cached = imgdiff_cli(*args, "-o", str(tmp / f"{name}2.png")).seconds
    return first, cached


@contextlib.contextmanager
def fresh_style_cache(folder: Path):
    """IMGDIFF_CACHE pointed at `folder` for the CLI runs inside (a cache no earlier run filled)."""
    os.environ["IMGDIFF_CACHE"] = str(folder)
    try:
        yield
    finally:
        del os.environ["IMGDIFF_CACHE"]


def bench_stylize(tmp: Path) -> tuple[float, float]:
    """First run (learns the style) and cached run of the README's stylize example, in a fresh cache."""
    ex = ROOT / "docs" / "examples"
    return first_and_cached(ex / "clean.png", ex / "style.png", tmp, "sty")


STYLE_CONTENTS = 8  # held-out photographs (centre crops) stylised per style
STYLE_SIDE = 384
STYLE_STRENGTHS = (0.3, 0.45, 0.6)  # 0.45 is the default
STYLE_SOURCES = {  # outside ../shared/bench: the README's example and a painterly corpus wallpaper
    "example": ("docs/examples/style.png", None),
    "autumn": ("corpus/Autumn.png", (1100, 160)),  # (x, y) of a 768 px square, downscaled to 384
}


@dataclass
class StyleRow:
    style: str
    method: str
    palette: list[float]
    texture: list[float]
    ssim: list[float]
    edges: list[float]
    seconds: float = 0.0


def _square(a: np.ndarray, side: int, at: tuple[int, int] | None = None) -> np.ndarray:
    h, w = a.shape[:2]
    if at is None:
        s = min(h, w)
        a = a[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    else:
        x, y = at
        a = a[y : y + 2 * side, x : x + 2 * side]
    return np.asarray(Image.fromarray(a).resize((side, side), Image.LANCZOS))


def bench_style(photos: Path, tmp: Path, crops: Path, limit: int | None) -> list[StyleRow]:
    """Reinhard, histogram matching, a patch-based transfer and imgdiff at three strengths on the
    held-out photographs x two styles; gallery strips of the first two contents per style."""
    from benchmarks import style as sm

    held = split_images(photos)[1][: min(STYLE_CONTENTS, limit or STYLE_CONTENTS)] if photos.is_dir() else []
    if not held:
        return []
    contents = [_square(load_u8(p), STYLE_SIDE) for p in held]
    names = [p.stem + ".png" for p in held]
    src = tmp / "style_contents"
    write_pngs(src, names, contents)
    rows = []
    with fresh_style_cache(tmp / "style-bench-cache"):
        for sname, (rel, at) in STYLE_SOURCES.items():
            if not (ROOT / rel).is_file():
                log(f"  style {sname}: {rel} missing, skipped")
                continue
            style = _square(load_u8(ROOT / rel), STYLE_SIDE, at)
            style_png = tmp / f"style_{sname}.png"
            Image.fromarray(style).save(style_png)
            outs: dict[str, list[np.ndarray]] = {}
            seconds: dict[str, float] = {}
            for method, fn in (
                ("Reinhard", sm.reinhard),
                ("histogram", sm.histogram_match),
                ("patch", sm.patch_transfer),
            ):
                t = time.perf_counter()
                outs[method] = [fn(c, style) for c in contents]
                seconds[method] = (time.perf_counter() - t) / len(contents)
            for strength in STYLE_STRENGTHS:
                method = f"imgdiff {strength:g}"
                dst = tmp / f"style_{sname}_{strength:g}"
                run = imgdiff_cli(
                    "stylize", str(src), "-o", str(dst), "--style", str(style_png), "--strength", f"{strength:g}", "-q"
                )
                outs[method] = read_outputs(dst, names)
                seconds[method] = run.seconds / len(contents)
            for method, images in outs.items():
                row = StyleRow(sname, method, [], [], [], [], seconds[method])
                for out, c in zip(images, contents, strict=True):
                    row.palette.append(sm.palette_ratio(out, c, style))
                    row.texture.append(sm.texture_ratio(out, c, style))
                    ss, ec = sm.content_kept(out, c)
                    row.ssim.append(ss)
                    row.edges.append(ec)
                rows.append(row)
                log(
                    f"  {sname} {method}: palette {np.mean(row.palette):.3f} texture {np.mean(row.texture):.3f} "
                    f"SSIM {np.mean(row.ssim):.3f} edges {np.mean(row.edges):.3f}"
                )
            for i in range(min(2, len(contents))):
                panels = [contents[i], style] + [outs[m][i] for m in outs]
                save_strip(crops / f"style_{sname}_{i}.jpg", [_thumb(p) for p in panels], (0, 0, 192))
    return rows


def _thumb(a: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((192, 192), Image.LANCZOS))


def bench_style_learning(tmp: Path) -> tuple[float, float]:
    """Seconds to learn a 384 px style (first run, fresh cache) and to stylize a 384 px photo with it cached."""
    style = _square(load_u8(ROOT / "docs/examples/style.png"), STYLE_SIDE)
    content = _square(load_u8(ROOT / "docs/examples/clean.png"), STYLE_SIDE)
    Image.fromarray(style).save(tmp / "learn_style.png")
    Image.fromarray(content).save(tmp / "learn_content.png")
    return first_and_cached(tmp / "learn_content.png", tmp / "learn_style.png", tmp, "learn")


# --- generate ---------------------------------------------------------------------------------

GEN_SIDE, GEN_SAMPLES = 256, 4


@dataclass
class GenerateRow:
    label: str
    reference: str
    samples: int
    seconds: float  # whole CLI call per sample; 0 for the controls
    seam: float
    distance: float
    sharpness: float
    distance_zoomed: float | None = None  # to held-out crops at the model's training zooms


def held_out_textures(photos: Path, held_out: bool = True) -> list[np.ndarray]:
    """The held-out (or, held_out=False, the training) photographic textures of build-photos.sh
    (manifest class `texture`); without a manifest class, the whole slice."""
    paths = split_images(photos)[1 if held_out else 0]
    classes = {Path(r["name"]).stem: r.get("cls", "") for r in manifest_rows(photos) or []}
    textures = [p for p in paths if classes.get(p.stem) == "texture"] or paths
    return [a for a in (load_u8(p) for p in textures) if min(a.shape[:2]) >= GEN_SIDE]


def generate_zooms() -> tuple[float, ...]:
    """The zooms of the shipped generate model's training crops (its config), as its runs validate."""
    return zoom_levels(crop_zoom(read_config(ROOT / "weights/generate.safetensors")))


def bench_generate(photos: Path, tmp: Path, crops: Path, limit: int | None) -> list[GenerateRow]:
    """Plain and styled --tileable textures against real crops of their reference, and the controls."""
    from benchmarks import generate as gm

    refs = held_out_textures(photos) if photos.is_dir() else []
    if not refs:
        return []
    n = min(GEN_SAMPLES, limit or GEN_SAMPLES)
    style = load_u8(ROOT / "docs/examples/style.png")
    side = min(GEN_SIDE, *style.shape[:2]) // 2 * 2
    zooms = generate_zooms()
    references = {
        "held-out textures": gm.random_crops(refs, GEN_SIDE, 2 * n, seed=1),
        "style image": gm.random_crops([style], side // 2, 2 * n, seed=1),
    }
    zoomed = gm.zoomed_crops(refs, GEN_SIDE // 2, 8 * len(zooms), zooms, seed=1)
    rows = []

    def row(label: str, ref: str, samples: list[np.ndarray], seconds: float = 0.0) -> None:
        reference = references[ref]
        rows.append(
            GenerateRow(
                label,
                ref,
                len(samples),
                seconds,
                float(np.mean([gm.seam_ratio(a) for a in samples])),
                texture_distance(samples, reference),
                gm.sharpness(samples, reference),
                texture_distance(samples, zoomed) if ref == "held-out textures" else None,
            )
        )
        r = rows[-1]
        log(
            f"  {label}: seam {r.seam:.2f}, distance {r.distance:.3f}"
            + ("" if r.distance_zoomed is None else f" (at the training zooms {r.distance_zoomed:.3f})")
            + f", sharpness {r.sharpness:.2f}"
        )

    control = gm.random_crops(refs, GEN_SIDE, n, seed=2)
    row("held-out texture crops (control)", "held-out textures", control)
    row("the same crops blurred, σ 2 px (control)", "held-out textures", gm.blurred(control))
    control = gm.zoomed_crops(refs, GEN_SIDE // 2, 2 * len(zooms), zooms, seed=2)
    row("held-out crops at the training zooms (control)", "held-out textures", control)
    trained = held_out_textures(photos, held_out=False)
    if trained:  # what a model that drew exactly its training textures would score
        control = gm.zoomed_crops(trained, GEN_SIDE // 2, 4 * len(zooms), zooms, seed=2)
        row("training-texture crops at the training zooms (control)", "held-out textures", control)
    outs = {}
    for label, extra in (
        ("imgdiff generate", ()),
        ("imgdiff generate --tileable", ("--tileable",)),
        (
            "imgdiff generate --tileable --style example",
            ("--tileable", "--style", str(ROOT / "docs/examples/style.png")),
        ),
    ):
        dst = tmp / f"gen_{len(outs)}"
        run = imgdiff_cli("generate", "--num", str(n), "--size", str(GEN_SIDE), "-o", str(dst), "-q", *extra)
        samples = [load_u8(p) for p in sorted(dst.glob("*.png"))]
        outs[label] = samples
        row(label, "style image" if "--style" in extra else "held-out textures", samples, run.seconds / len(samples))
    row("style image crops (control)", "style image", gm.random_crops([style], side // 2, n, seed=2))
    tiled = [
        np.tile(outs[k][0], (2, 2, 1))
        for k in ("imgdiff generate --tileable", "imgdiff generate --tileable --style example")
    ]
    save_strip(crops / "generate_tiled.jpg", tiled, (0, 0, 2 * GEN_SIDE))
    return rows


@dataclass
class BigRun:
    label: str
    width: int
    height: int
    seconds: float
    peak_rss_gib: float
    psnr: float

    @property
    def s_per_mp(self) -> float:
        return self.seconds / (self.width * self.height / 1e6)


def synthetic_photo(kodak: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """A camera-sized photo tiled from Kodak24 (mirrored on the second pass), so its content, and so
    any content-dependent cost, is a real photo's rather than one smooth Lanczos enlargement's."""
    cell = min(min(a.shape[:2]) for a in kodak)
    tiles = [a[:cell, :cell] for a in kodak] + [a[:cell, :cell][:, ::-1] for a in kodak]
    cols, rows = -(-width // cell), -(-height // cell)
    grid = [np.concatenate([tiles[(r * cols + c) % len(tiles)] for c in range(cols)], axis=1) for r in range(rows)]
    return np.ascontiguousarray(np.concatenate(grid, axis=0)[:height, :width])


def bench_big(bench: Path, tmp: Path) -> list[BigRun]:
    """Wall time and peak memory of one large photo, and a quarter of it: is time linear in pixels?"""
    width, height = BIG_SIZE
    clean = synthetic_photo(load_set(bench, "Kodak24", None).images, width, height)
    noisy = add_noise(clean.astype(np.float64), 25, SEED)
    runs = []
    for label, w, h in (("full", width, height), ("half each side", width // 2, height // 2)):
        src, dst = tmp / f"big_{w}x{h}.png", tmp / f"big_{w}x{h}_out.png"
        Image.fromarray(np.ascontiguousarray(noisy[:h, :w])).save(src, compress_level=1)
        run = imgdiff_cli("denoise", str(src), "-o", str(dst), "--sigma", "25", "-q")
        value = psnr(load_u8(dst), clean[:h, :w])
        runs.append(BigRun(label, w, h, run.seconds, run.peak_rss_bytes / 2**30, value))
        log(f"  {w}x{h}: {run.seconds:.1f} s, peak RSS {run.peak_rss_bytes / 2**30:.2f} GiB")
    return runs


# --- machine ------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_isa() -> str:
    """The instruction sets that decide imgdiff's CPU path, and the path --precision auto takes."""
    from imgdiff.device import cpu_flags, cpu_has_amx

    flags = cpu_flags()
    names = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI"}
    have = [label for flag, label in names.items() if flag in flags]
    have += ["AVX512-BF16"] if "avx512_bf16" in flags else []
    have += ["AMX"] if cpu_has_amx() else []
    return f"{cpu_model()}, {', '.join(have) or 'no SIMD flags read'}; `--precision auto` = {auto_path()}"


def auto_path() -> str:
    """The CPU path --precision auto takes here, and why: the float precision, then int8 if used."""
    from imgdiff.device import bf16_speedup, cpu_auto_bf16, cpu_auto_int8, cpu_bf16_path, cpu_int8_path

    path = cpu_bf16_path()
    choice = "fp32 (no native bf16)"
    if path:
        speed = f"the probe measured bf16 convolutions at {bf16_speedup():.2f}x fp32's speed"
        choice = f"bf16 ({path}; {speed})" if cpu_auto_bf16() else f"fp32 ({path} present, but {speed})"
    if cpu_auto_int8():
        choice += f", with the deep blocks in int8 ({cpu_int8_path()}; {int8_thresholds()})"
    return choice


def int8_thresholds() -> str:
    """Each shipped checkpoint's int8 threshold, grouped: 'from 64 channels in denoise, ...'."""
    from imgdiff.models.onednn import int8_min_channels

    groups: dict[int, list[str]] = {}
    for path in sorted((ROOT / "weights").glob("*.safetensors")):
        groups.setdefault(int8_min_channels(read_config(path)), []).append(path.stem)
    return "from " + ", ".join(f"{n} channels in {' / '.join(names)}" for n, names in sorted(groups.items()))


def auto_path_under(env: dict[str, str]) -> str:
    """auto_path() as a process started with env sees it (oneDNN reads its ISA cap once, at load)."""
    code = "from benchmarks.measure import auto_path; print(auto_path())"
    run = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return run.stdout.strip().splitlines()[-1]


def mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def commit(out: Path, crops: Path) -> str:
    """Short HEAD, plus +dirty when anything but this script's own outputs differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        exclude = [
            f":(exclude){p.resolve().relative_to(ROOT)}" for p in (out, crops) if p.resolve().is_relative_to(ROOT)
        ]
        dirty = git("status", "--porcelain", "--", ".", *exclude)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def code_fingerprint() -> str:
    """sha256 over imgdiff/ and weights/ (every file, tracked or not): a run that straddles an edit
    or a commit mixes code versions, and the commit line alone cannot show that."""
    import hashlib

    h = hashlib.sha256()
    for folder in ("imgdiff", "weights"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# --- markdown -----------------------------------------------------------------------------------
