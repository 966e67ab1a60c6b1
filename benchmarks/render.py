"""docs/BENCHMARKS.md's Markdown from the rows benchmarks/measure.py produces (no measuring here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import history as speed_history
from benchmarks.measure import (
    AVX2_ENV,
    CROP,
    DENOISE_TARGET,
    NLM_H,
    NO_AMX_ENV,
    PEERS,
    PHOTO_BM3D_SIGMA,
    PHOTO_CROP,
    PUBLISHED_DENOISE,
    PUBLISHED_SR,
    REAL_SR_LR,
    SR_TARGET,
    STEP_CROP,
    UNTOLD,
    BigRun,
    CameraRow,
    DenoiseRow,
    NoiseEstimate,
    PrecisionRow,
    RealNoise,
    SRRow,
    StepRow,
    env_text,
    s_per_mp,
    speed_pairs,
)
from imgdiff.cards import total_compute
from imgdiff.checkpoint import read_config
from imgdiff.defaults import DENOISE_ENSEMBLE
from imgdiff.eval.evaluate import MethodScores
from imgdiff.eval.metrics import psnr, psnr_y


def camera_section(rows: list[CameraRow]) -> list[str]:
    if not rows:
        return []
    from benchmarks.camera import ISO_LEVELS, JPEG_QUALITY

    lines = [
        "## Camera noise",
        "",
        "Benchmark images as one fixed camera would record them (`benchmarks/camera.py`, not the training "
        "pipeline: another camera matrix, a GRBG mosaic with OpenCV's demosaicing, the sRGB curve, Pillow's "
        f"JPEG at quality {JPEG_QUALITY}), at three ISO levels (shot, read variances in linear raw: "
        + ", ".join(f"{k} {v[0]:g}, {v[1]:g}" for k, v in ISO_LEVELS.items())
        + "). imgdiff: `imgdiff denoise DIR -o OUT` with no options (the default must detect camera noise) "
        "and with `--mode real`, and with `--steps 4` (the texture knob: the MMSE estimate refined by "
        "sampling from a low noise level); NL-means and CBM3D are given the true noise standard deviation of each "
        "image (std of noisy - clean, which also counts demosaicing and JPEG error). RGB PSNR / SSIM; "
        "texture = high-frequency energy of the output over the clean image's on each image's most "
        "textured 96x96 square (1 = kept, below 1 = smoothed; target within ±15 %). CBM3D on the first "
        "images only (its column says how many); the other columns on all of them, and the CBM3D gap is "
        "computed on the same images.",
        "",
    ]
    header = ["set", "ISO", "images", "true σ", "input", "NL-means", "CBM3D", "imgdiff default", "--mode real"]
    header += ["--steps 4", "default − CBM3D (same images)", "--steps 4 − CBM3D"]
    header += ["texture: input / CBM3D / default / real / --steps 4"]
    body = []
    for r in rows:
        n = r.bm3d_images
        cb = r.mean("cbm3d", n) if n else None

        def cell(m: str, r: CameraRow = r) -> str:
            return f"{r.mean(m):.2f} / {np.mean(r.scores[m].ssim):.3f}"

        gap = f"{r.mean('imgdiff', n) - cb:+.2f}" if cb is not None else "—"
        gap4 = f"{r.mean('imgdiff-steps4', n) - cb:+.2f}" if cb is not None else "—"
        tex = " / ".join(
            f"{np.mean(r.texture[m][: n or None]):.2f}" if r.texture[m] else "—"
            for m in ("input", "cbm3d", "imgdiff", "imgdiff-real", "imgdiff-steps4")
        )
        body.append(
            [
                r.dataset,
                r.iso,
                str(r.images),
                f"{r.true_sigma:.1f}",
                cell("input"),
                cell("nlmeans"),
                f"{cb:.2f} ({n})" if cb is not None else "—",
                cell("imgdiff"),
                cell("imgdiff-real"),
                cell("imgdiff-steps4"),
                gap,
                gap4,
                tex,
            ]
        )
    return lines + table(header, body) + [""]


def grain_section(rows: list[CameraRow]) -> list[str]:
    if not rows:
        return []
    from benchmarks.camera import GRAIN_LEVELS

    lines = [
        "## Film grain",
        "",
        "Benchmark images as a film scan might look (`benchmarks/camera.py::film_scan`, not the training "
        "model: white noise blurred by a Gaussian of "
        + " / ".join(sorted({f"{b:g}" for b, _ in GRAIN_LEVELS.values()}))
        + " px to a std of "
        + " / ".join(sorted({f"{s:g}" for _, s in GRAIN_LEVELS.values()}))
        + ", under white noise of σ 1). Kodak24's own images are film scans that read as camera noise "
        "before any grain is added, so here the default sends grain to the real-photo model by its 2x2 test "
        "or keeps the Gaussian one; the 4x4 grain test is measured on held-out photographs "
        '(docs/TRAINING.md, "Film grain"). imgdiff: `imgdiff denoise DIR -o OUT` with no options, and '
        "the two models it chooses between, `--mode gaussian` (at the estimated σ, what white noise gets) "
        "and `--mode real`; NL-means given the true noise std. RGB PSNR / SSIM; texture as above.",
        "",
    ]
    header = ["set", "grain", "images", "true σ", "input", "NL-means", "imgdiff default", "--mode gaussian"]
    header += ["--mode real", "texture: input / default / gaussian / real"]
    body = []
    for r in rows:

        def cell(m: str, r: CameraRow = r) -> str:
            return f"{r.mean(m):.2f} / {np.mean(r.scores[m].ssim):.3f}"

        tex = " / ".join(
            f"{np.mean(r.texture[m]):.2f}" for m in ("input", "imgdiff", "imgdiff-gaussian", "imgdiff-real")
        )
        body.append(
            [r.dataset, r.iso, str(r.images), f"{r.true_sigma:.1f}", cell("input"), cell("nlmeans"), cell("imgdiff")]
            + [cell("imgdiff-gaussian"), cell("imgdiff-real"), tex]
        )
    return lines + table(header, body) + [""]


def camera_upscale_section(rows: list[CameraRow]) -> list[str]:
    if not rows:
        return []
    from benchmarks.camera import JPEG_QUALITY
    from benchmarks.measure import CAMERA_SR_SCALE

    s = CAMERA_SR_SCALE
    lines = [
        f"## Camera-degraded upscaling (x{s})",
        "",
        f"Each benchmark image bicubic-downscaled x{s}, then recorded by the same benchmark camera as above "
        f"(mosaic, raw noise at the three ISO levels, demosaicing, sRGB curve, JPEG q{JPEG_QUALITY}); the "
        f"task is the clean HR image back. Baselines: bicubic; bicubic then CBM3D given the true noise std "
        "of the upscaled image; CBM3D on the LR image given its true std, then bicubic. imgdiff: "
        f"`imgdiff upscale DIR -o OUT --scale {s}` (default model, trained on clean bicubic downscales) and "
        f"with `--mode real` (the real-photo model). RGB PSNR / SSIM with {s} px shaved; texture as above, "
        "on the HR image's most textured 96x96 square. CBM3D on the first images only; the gap is on the "
        "same images.",
        "",
    ]
    header = ["set", "ISO", "images", "LR true σ", "bicubic", "bicubic → CBM3D", "CBM3D → bicubic"]
    header += ["imgdiff default", "--mode real", "real − bicubic→CBM3D (same images)"]
    header += ["texture: bicubic→CBM3D / real"]
    body = []
    for r in rows:
        n = r.bm3d_images

        def cell(m: str, r: CameraRow = r) -> str:
            return f"{r.mean(m):.2f} / {np.mean(r.scores[m].ssim):.3f}"

        def first(m: str, r: CameraRow = r, n: int = n) -> str:
            return f"{r.mean(m, n):.2f} ({n})" if n else "—"

        gap = f"{r.mean('imgdiff-real', n) - r.mean('bicubic-cbm3d', n):+.2f}" if n else "—"
        tex = " / ".join(
            f"{np.mean(r.texture[m][: n or None]):.2f}" if r.texture[m] else "—"
            for m in ("bicubic-cbm3d", "imgdiff-real")
        )
        body.append(
            [
                r.dataset,
                r.iso,
                str(r.images),
                f"{r.true_sigma:.1f}",
                cell("bicubic"),
                first("bicubic-cbm3d"),
                first("cbm3d-bicubic"),
                cell("imgdiff"),
                cell("imgdiff-real"),
                gap,
                tex,
            ]
        )
    return lines + table(header, body) + [""]


def extra_sections(noise: list[NoiseEstimate], stylize: tuple[float, float] | None) -> list[str]:
    lines = [
        "## Noise-level estimation (`--sigma auto`)",
        "",
        "CBSD68, the same clipped 8-bit noisy images as above; error = estimate − true σ (0..255 scale); "
        "target: within ±2 for σ 5–50.",
        "",
        *table(
            ["σ", "mean error", "max abs error", "images within ±2"],
            [
                [str(r.sigma), f"{r.mean_error:+.2f}", f"{r.max_abs_error:.2f}", f"{r.within_2} of {r.images}"]
                for r in noise
            ],
        ),
        "",
    ]
    if stylize:
        lines += [
            "## Stylize: learning a style, then reusing it",
            "",
            "`imgdiff stylize docs/examples/clean.png --style docs/examples/style.png` (384x256 content, "
            "300 fine-tuning steps, 12 sampling steps), wall clock including start-up, in a fresh style cache:",
            "",
            *table(
                ["run", "seconds"],
                [
                    ["first (learns the style)", f"{stylize[0]:.1f}"],
                    ["second (style from the cache)", f"{stylize[1]:.1f}"],
                ],
            ),
            "",
        ]
    return lines


def mark(value: float, target: float | None) -> str:
    """The must-exceed verdict, computed from the numbers (never hard-coded)."""
    if target is None:
        return ""
    return " ✓" if value > target else " ✗"


def fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def denoise_section(rows: list[DenoiseRow], quick: bool) -> list[str]:
    lines = ["## Colour Gaussian denoising", ""]
    lines.append(
        "Protocol: clean + N(0, σ²) per pixel and channel on the 0..255 scale (numpy `default_rng(0 + i)` for "
        "image i), clipped and rounded to an 8-bit PNG (the published figures use unclipped float noise); "
        "imgdiff = `python -m imgdiff denoise DIR -o OUT --sigma σ -q` with default settings (1 step, "
        f"{DENOISE_ENSEMBLE}-way rotation/flip ensemble, `--precision auto`); RGB PSNR (dB) "
        f"over the whole image, mean over the images; ✓/✗ = imgdiff above/below the published {DENOISE_TARGET}"
        f" figure. NL-means = `cv2.fastNlMeansDenoisingColored(noisy, None, h, h, 7, 21)`, h = {NLM_H:g}σ; "
        "CBM3D = `bm3d.bm3d_rgb(noisy/255, σ/255)` quantised to 8 bits."
        + (" **Quick run: only the first images of each set.**" if quick else "")
    )
    lines.append("")
    header = [
        "set",
        "σ",
        "images (size)",
        "noisy",
        "NL-means",
        "**imgdiff**",
        f"{DENOISE_TARGET} published (target)",
        "CBM3D measured (images)",
        "imgdiff, same images",
        "FFDNet published",
        "DRUNet published",
    ]
    body = []
    for r in rows:
        pub = PUBLISHED_DENOISE.get((r.dataset, r.sigma), {})
        target = pub.get(DENOISE_TARGET)
        if r.bm3d_images:
            cb = f"{r.mean('cbm3d'):.2f} ({r.bm3d_images} of {r.total} images)"
            same = fmt(r.mean("imgdiff", r.bm3d_images))
        else:
            cb, same = "not run", "—"
        body.append(
            [
                r.dataset,
                str(r.sigma),
                f"{r.images} of {r.total} ({r.size})",
                fmt(r.mean("noisy")),
                fmt(r.mean("nlmeans")),
                f"**{r.mean('imgdiff'):.2f}**{mark(r.mean('imgdiff'), target)}",
                fmt(target),
                cb,
                same,
                fmt(pub.get("FFDNet")),
                fmt(pub.get("DRUNet")),
            ]
        )
    lines += table(header, body)
    lines += [
        "",
        "Time (s per input megapixel: NL-means and CBM3D in-process per image; imgdiff = wall clock of the "
        "whole CLI call, start-up and model load included, nothing subtracted) and mean SSIM (RGB):",
        "",
    ]
    header = ["set", "σ", "NL-means s/MP", "CBM3D s/MP", "imgdiff s/MP", "SSIM noisy", "NL-means", "CBM3D", "imgdiff"]
    body = []
    for r in rows:
        sc = r.scores
        cb_t = fmt(s_per_mp(sc["cbm3d"]), 1) if r.bm3d_images else "—"
        cb_s = fmt(float(np.mean(sc["cbm3d"].ssim)), 4) if r.bm3d_images else "—"
        body.append(
            [
                r.dataset,
                str(r.sigma),
                fmt(s_per_mp(sc["nlmeans"])),
                cb_t,
                fmt(s_per_mp(sc["imgdiff"])),
                *(fmt(float(np.mean(sc[m].ssim)), 4) for m in ("noisy", "nlmeans")),
                cb_s,
                fmt(float(np.mean(sc["imgdiff"].ssim)), 4),
            ]
        )
    return lines + table(header, body) + [""]


def sr_section(rows: list[SRRow], quick: bool) -> list[str]:
    lines = ["## Super-resolution", ""]
    lines.append(
        "Protocol: HR modcropped to the scale, LR = PIL `Image.BICUBIC` downscale (antialiased), 8-bit PNG; "
        "imgdiff = `python -m imgdiff upscale DIR -o OUT --scale S -q` with default settings; FSRCNN / ESPCN / "
        "LapSRN = OpenCV `dnn_superres` with the ../shared/peers exports; Y-channel PSNR (BT.601, 16..235) with "
        "`scale` pixels shaved, mean over the images; ✓/✗ = imgdiff above/below the published target "
        f"({', '.join(f'x{k}: {v}' for k, v in SR_TARGET.items())})."
        + (" **Quick run: only the first images of each set.**" if quick else "")
    )
    lines.append("")
    header = [
        "set",
        "scale",
        "images",
        "bicubic",
        *PEERS,
        "**imgdiff**",
        "target (published)",
        "bicubic published",
        "SRCNN published",
        "FSRCNN published",
        "EDSR published",
    ]
    body = []
    for r in rows:
        pub = PUBLISHED_SR.get((r.dataset, r.scale), {})
        tname = SR_TARGET[r.scale]
        target = pub.get(tname)
        body.append(
            [
                r.dataset,
                f"x{r.scale}",
                f"{r.images} of {r.total}",
                fmt(r.mean("bicubic")),
                *(fmt(r.mean(p)) for p in PEERS),
                f"**{r.mean('imgdiff'):.2f}**{mark(r.mean('imgdiff'), target)}",
                f"{fmt(target)} ({tname})",
                *(fmt(pub.get(m)) for m in ("bicubic", "SRCNN", "FSRCNN", "EDSR")),
            ]
        )
    lines += table(header, body)
    lines += [
        "",
        "Time (s per output megapixel: peers in-process per image, model load excluded; imgdiff = wall clock of "
        "the whole CLI call, start-up and model load included) and mean Y-SSIM (same shave):",
        "",
    ]
    methods = ("bicubic", *PEERS, "imgdiff")
    header = ["set", "scale", *(f"{m} s/MP" for m in methods), *(f"{m} SSIM" for m in methods)]
    body = [
        [
            r.dataset,
            f"x{r.scale}",
            *(fmt(s_per_mp(r.scores[m]), 3) for m in methods),
            *(fmt(float(np.mean(r.scores[m].ssim)), 4) for m in methods),
        ]
        for r in rows
    ]
    return lines + table(header, body) + [""]


def speed_section(den: list[DenoiseRow], sr: list[SRRow], big: list[BigRun] | None, startup: float) -> list[str]:
    lines = ["## Speed", ""]
    d = next((r for r in den if r.dataset == "CBSD68" and r.sigma == 25), None)
    if d:
        a, b = s_per_mp(d.scores["imgdiff"]), s_per_mp(d.scores["nlmeans"])
        lines.append(
            f"- (a) Denoising, CBSD68 σ=25 ({d.images} images, {d.scores['imgdiff'].megapixels:.2f} MP): default "
            f"`imgdiff denoise` {a:.2f} s/MP (CLI wall clock) vs `fastNlMeansDenoisingColored` {b:.2f} s/MP "
            f"(in process): imgdiff takes **{a / b:.1f}x** NL-means' time."
        )
    s = next((r for r in sr if r.dataset == "Set14" and r.scale == 4), None)
    if s:
        a, b = s_per_mp(s.scores["imgdiff"]), s_per_mp(s.scores["LapSRN"])
        lines.append(
            f"- (b) Upscaling x4, Set14 ({s.images} images, {s.scores['imgdiff'].megapixels:.2f} output MP): "
            f"`imgdiff upscale --scale 4` {a:.2f} s/output-MP vs LapSRN x4 {b:.2f} s/output-MP: "
            f"imgdiff takes **{a / b:.1f}x** LapSRN's time."
        )
    lines.append(
        f"- Start-up overhead included in every imgdiff figure: `python -m imgdiff --version` takes {startup:.2f} s."
    )
    if big:
        lines += [
            "- (c) One large photo: a synthetic noisy photo (Kodak24 tiles, σ=25, 8-bit PNG) through "
            "`python -m imgdiff denoise big.png -o out.png --sigma 25 -q`; peak resident memory of the imgdiff "
            "process (`wait4` rusage), wall clock, PSNR against the clean mosaic:",
            "",
        ]
        body = [
            [
                f"{b.width}x{b.height} ({b.label})",
                f"{b.width * b.height / 1e6:.2f}",
                f"{b.seconds:.1f}",
                f"{b.s_per_mp:.2f}",
                f"{b.peak_rss_gib:.2f}",
                f"{b.psnr:.2f}",
            ]
            for b in big
        ]
        lines += table(["image", "MP", "wall s", "s/MP", "peak RSS (GiB)", "PSNR (dB)"], body)
        if len(big) == 2:
            lines += [
                "",
                f"Time per MP, large vs quarter-size image: {big[0].s_per_mp / big[1].s_per_mp:.2f}x (1.00 = linear).",
            ]
    else:
        lines.append("- (c) Large-photo test skipped (--quick).")
    return lines + [""]


def precision_section(
    rows: list[PrecisionRow],
    den: list[DenoiseRow],
    sr: list[SRRow],
    overhead: tuple[float, float, float] | None,
    isa: str,
    no_amx_path: str | None = None,
    history: list[dict] | None = None,
) -> list[str]:
    """What --precision auto chose on this CPU, its quality cost against fp32 on every row, and the
    speed of each instruction-set path against the peers the targets name (on an AMX CPU also with
    AMX capped away, the path of the CPUs the targets are set for), then every run's ratios."""
    if not rows:
        return []
    capped = env_text(AVX2_ENV)
    no_amx = any(r.no_amx is not None for r in rows)
    cap_text = ""
    if no_amx:
        cap_text = (
            f", and on this AMX CPU with `{env_text(NO_AMX_ENV)}` too (oneDNN kept to a Zen 4's ISA — AVX-512 "
            f"with bf16 and VNNI dot products, no AMX — where auto takes {no_amx_path})"
        )
    lines = [
        "## Precision paths and instruction sets",
        "",
        f"This CPU: {isa}. Every row above ran with the default `--precision auto`; here each is run again "
        f"with `--precision fp32` (the quality reference), and the two speed rows once more with `{capped}` "
        f"(a laptop-class CPU: no AVX-512, no bf16; auto then picks fp32){cap_text}. Same images, same CLI.",
        "",
    ]

    def capped_cell(m: MethodScores | None) -> str:
        return "—" if m is None else f"{s_per_mp(m):.2f} ({np.mean(m.psnr):.2f} dB)"

    body = []
    for r in rows:
        auto, fp32 = float(np.mean(r.auto.psnr)), float(np.mean(r.fp32.psnr))
        label = f"x{r.param}" if r.kind == "upscale" else f"σ={r.param}" + (", no options" if r.kind == UNTOLD else "")
        body.append(
            [
                r.dataset,
                label,
                f"{auto:.2f}",
                f"{fp32:.2f}",
                f"{auto - fp32:+.3f}",
                f"{s_per_mp(r.auto):.2f}",
                f"{s_per_mp(r.fp32):.2f}",
                *([capped_cell(r.no_amx)] if no_amx else []),
                capped_cell(r.avx2),
            ]
        )
    heads = ["set", "row", "auto PSNR", "fp32 PSNR", "auto − fp32 (dB)", "auto s/MP", "fp32 s/MP"]
    lines += table([*heads, *(["no-AMX-capped s/MP"] if no_amx else []), "AVX2-capped s/MP"], body)
    worst = max(abs(float(np.mean(r.auto.psnr)) - float(np.mean(r.fp32.psnr))) for r in rows)
    lines += ["", f"Largest quality change of the default path against fp32: {worst:.3f} dB (target ≤ 0.05).", ""]
    peers = [(label, ref, r) for _, label, ref, r in speed_pairs(rows, den, sr)]
    if peers:
        body = [
            [
                name,
                f"{ref:.2f}",
                *(f"{s_per_mp(m) / ref:.2f}x" for m in (r.auto, r.fp32)),
                *(["—" if r.no_amx is None else f"{s_per_mp(r.no_amx) / ref:.2f}x"] if no_amx else []),
                f"{s_per_mp(r.avx2) / ref:.2f}x",
            ]
            for name, ref, r in peers
            if r.avx2 is not None
        ]
        lines += ["Time against the peer each target names (target ≤ 1.0x; imgdiff whole-CLI wall clock):", ""]
        lines += table(
            ["row", "peer s/MP", "auto", "fp32", *(["no-AMX-capped"] if no_amx else []), "AVX2-capped"], body
        )
        lines.append("")
    if overhead:
        call, imp, added = overhead
        lines += [
            f"Per-call overhead: a whole `imgdiff denoise` of a 64x64 image takes {call:.2f} s; "
            f"`python -c 'import torch'` alone {imp:.2f} s: imgdiff adds {added:.2f} s "
            "(target ≤ 0.30; 7 interleaved pairs, medians of the times and of the paired differences).",
            "",
        ]
    if history:
        lines += [
            "The same ratios from every full run of this command, newest first (each run appends its own to "
            f"`bench/{speed_history.FILE}`; a machine is named by its CPU and the path `--precision auto` took "
            "there, or the ISA cap the row ran under):",
            "",
        ]
        heads = [
            "date",
            "commit",
            "CPU: path",
            "denoise vs NL-means",
            "denoise, no options, vs NL-means",
            "x4 vs LapSRN",
            "per-call overhead",
            "from",
        ]
        lines += table(heads, speed_history.rows(history))
        lines.append("")
    return lines


def steps_section(rows: list[StepRow], images: int) -> list[str]:
    lines = [
        "## Sampling steps",
        "",
        f"CBSD68 σ=25, first {images} images, `python -m imgdiff denoise DIR -o OUT --sigma 25 --steps N --seed 0 -q`; "
        "RGB PSNR and CLI wall clock per input MP. One step is the MMSE estimate (the PSNR optimum); more "
        "ancestral steps draw a sharper sample from p(clean | noisy).",
        "",
    ]
    lines += table(
        ["steps", *(str(r.steps) for r in rows)],
        [
            ["PSNR (dB)", *(f"{r.psnr:.2f}" for r in rows)],
            ["s/MP", *(f"{r.s_per_mp:.2f}" for r in rows)],
        ],
    )
    lines += [
        "",
        f"{STEP_CROP}x{STEP_CROP} crops of the first image: noisy, "
        f"steps {', '.join(str(r.steps) for r in rows)}, clean.",
        "",
    ]
    cells = ["noisy", *(f"{r.steps} step{'s' if r.steps > 1 else ''}" for r in rows), "clean"]
    pics = ["steps_noisy.png", *(r.crop for r in rows), "steps_clean.png"]
    lines += table(cells, [[f"![{c}](bench/{p})" for c, p in zip(cells, pics, strict=True)]])
    return lines + [""]


def crops_section(
    den: DenoiseRow | None, sr: SRRow | None, sr_index: int, rni: list[RealNoise], real_sr: list[str]
) -> list[str]:
    lines = ["## Before / after", ""]
    if den:
        names = ["noisy", "nlmeans", *(["cbm3d"] if "cbm3d" in den.panels else []), "imgdiff", "clean"]
        label = {"noisy": "noisy", "nlmeans": "NL-means", "cbm3d": "CBM3D", "imgdiff": "imgdiff", "clean": "clean"}
        clean = den.panels["clean"]
        parts = [f"{label[n]}" + ("" if n == "clean" else f" ({psnr(den.panels[n], clean):.2f} dB)") for n in names]
        lines += [
            f"CBSD68 σ={den.sigma}, first image, most textured {CROP}x{CROP} crop; left to right: {' | '.join(parts)}"
            " (whole-image PSNR):",
            "",
            f"![{' | '.join(label[n] for n in names)}](bench/denoise_cbsd68_s{den.sigma}.png)",
            "",
        ]
    if sr:
        names = ["bicubic", "FSRCNN", "LapSRN", "imgdiff"]
        hr = sr.panels["hr"][sr_index]
        parts = [f"{n} ({psnr_y(sr.panels[n][sr_index], hr, sr.scale):.2f} dB)" for n in names] + ["HR"]
        stem = Path(sr.names[sr_index]).stem
        lines += [
            f"{sr.dataset} x{sr.scale}, `{stem}`, most textured {CROP}x{CROP} crop of the HR frame; left to right: "
            f"{' | '.join(parts)} (whole-image Y-PSNR):",
            "",
            f"![bicubic | FSRCNN | LapSRN | imgdiff | HR](bench/sr_{sr.dataset.lower()}_x{sr.scale}_{stem}.png)",
            "",
        ]
    if rni:
        lines += [
            "### Real noise",
            "",
            "RNI15 (real noisy photos, no ground truth), first three images; left to right: input | default "
            "`imgdiff denoise` (no options: its noise reading picks the Gaussian model at the estimated σ or the "
            "real-photo model; what it read is given per image) | `imgdiff denoise --mode real` (blind "
            "real-photo model):",
            "",
        ]
        for r in rni:
            lines += [
                f"- `{r.name}` (default: {r.reading}):",
                "",
                f"  ![input | default | real](bench/{r.crop})",
                "",
            ]
    if real_sr:
        lines += [
            "### Real photos, upscaled x4",
            "",
            f"The most textured {REAL_SR_LR}x{REAL_SR_LR} crop of the first RNI15 images (real camera noise and "
            "JPEG), upscaled x4; left to right: bicubic | `imgdiff upscale --scale 4` (model trained on clean bicubic "
            "downscales) | `imgdiff upscale --scale 4 --mode real` (blur, camera noise, JPEG in training):",
            "",
            *[f"![bicubic | upscale | upscale --mode real](bench/{c})\n" for c in real_sr],
        ]
    return lines


def photo_section(photos: Path, den: list[DenoiseRow], sr: list[SRRow]) -> list[str]:
    lines = ["## Natural photographs (held-out validation slice)", ""]
    if not den and not sr:
        return lines + [
            f"Not run: no photo folder at `{photos}`. Build it with `../shared/data/build-photos.sh photos/` "
            "(or pass `--photos DIR`).",
            "",
        ]
    n = den[0].images if den else sr[0].images
    lines += [
        f"The {n} photographs that `../shared/data/build-photos.sh` produces and the trainer holds out "
        "(`imgdiff.train.data.split_images`: the lowest-hash 15 % of each class of its manifest, photos and "
        f"textures), centre-cropped to {PHOTO_CROP}x{PHOTO_CROP}; never trained on, and the slice checkpoints are "
        "chosen on. No published figures exist for it, so CBM3D is measured on the same images "
        f"(σ = {PHOTO_BM3D_SIGMA}). Same protocol as the tables above.",
        "",
    ]
    body = []
    for r in den:
        cb = fmt(r.mean("cbm3d")) if r.bm3d_images else "not run"
        gap = f"{r.mean('imgdiff') - r.mean('cbm3d'):+.2f}" if r.bm3d_images else "—"
        body.append(
            [str(r.sigma), fmt(r.mean("noisy")), fmt(r.mean("nlmeans")), f"**{r.mean('imgdiff'):.2f}**", cb, gap]
        )
    if body:
        lines += table(["σ", "noisy", "NL-means", "**imgdiff**", "CBM3D (measured)", "imgdiff − CBM3D"], body)
        lines.append("")
    body = [[f"x{r.scale}", *(fmt(r.mean(m)) for m in ("bicubic", *PEERS)), f"**{r.mean('imgdiff'):.2f}**"] for r in sr]
    if body:
        lines += ["Super-resolution on the same crops (Y-PSNR, scale px shaved):", ""]
        lines += table(["scale", "bicubic", *PEERS, "**imgdiff**"], body)
        lines.append("")
    return lines


def models_section(weights: Path) -> list[str]:
    """What each shipped checkpoint cost to train: its own run plus the runs it was initialised from."""
    lines = [
        "## Models and training compute",
        "",
        "From each checkpoint's metadata (`imgdiff models info NAME`); CPU-hours are 2-core wall hours x cores, "
        "totals include every run the checkpoint was fine-tuned from. Model cards: `weights/MODEL_CARDS.md`.",
        "",
    ]
    body = []
    for path in sorted(weights.glob("*.safetensors")):
        cfg = read_config(path)
        tr = cfg.get("training", {})
        cpu, gpu = total_compute(cfg)
        body.append(
            [
                path.stem,
                str(tr.get("steps", "?")),
                fmt(float(tr.get("cpu_hours", 0))),
                fmt(cpu),
                fmt(gpu, 1),
                str(tr.get("data", "?")),
            ]
        )
    return (
        lines
        + table(["model", "steps (last run)", "CPU-h (last run)", "CPU-h total", "GPU-min total", "data"], body)
        + [""]
    )


def machine_section(info: dict[str, str]) -> list[str]:
    lines = ["## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    return lines + [""]


def summary_lines(den: list[DenoiseRow], sr: list[SRRow]) -> list[str]:
    """The verdicts first: which rows imgdiff wins against its must-exceed target."""
    verdicts = []
    for r in den:
        t = PUBLISHED_DENOISE.get((r.dataset, r.sigma), {}).get(DENOISE_TARGET)
        if t is not None:
            verdicts.append((f"{r.dataset} σ={r.sigma}", r.mean("imgdiff"), t, DENOISE_TARGET))
    for r in sr:
        t = PUBLISHED_SR.get((r.dataset, r.scale), {}).get(SR_TARGET[r.scale])
        if t is not None:
            verdicts.append((f"{r.dataset} x{r.scale}", r.mean("imgdiff"), t, SR_TARGET[r.scale]))
    wins = sum(v > t for _, v, t, _ in verdicts)
    lines = [f"imgdiff exceeds its must-exceed published target in **{wins} of {len(verdicts)}** rows:", ""]
    lines += [f"- {name}: {v:.2f} dB vs {who} {t:.2f}{mark(v, t)} ({v - t:+.2f} dB)" for name, v, t, who in verdicts]
    return lines + [""]


# --- main ---------------------------------------------------------------------------------------


def style_section(rows: list, learning: tuple[float, float] | None) -> list[str]:
    if not rows:
        return []
    from benchmarks.measure import STYLE_SIDE, STYLE_SOURCES

    lines = [
        "## Style transfer",
        "",
        f"{len(rows[0].palette)} held-out photographs ({STYLE_SIDE}x{STYLE_SIDE} centre crops) x "
        f"{len({r.style for r in rows})} styles ("
        + ", ".join(f"{k}: `{v[0]}`" for k, v in STYLE_SOURCES.items())
        + "). Palette ratio: sliced Wasserstein distance of the output's Lab pixels to the style's over the "
        "content's own (1 = nothing transferred, 0 = the style's palette); texture ratio: the same on "
        "mean-removed 5x5 lightness patches at 3 scales; content kept: SSIM and Sobel-edge correlation "
        "of the blurred lightness against the content (`benchmarks/style.py`). Peers are implemented in "
        "the benchmark, not shipped. Targets at the default strength 0.45: palette ≤ Reinhard's, texture "
        "≤ 0.6, SSIM ≥ 0.75, edges ≥ 0.8.",
        "",
    ]
    header = ["style", "method", "palette ratio ↓", "texture ratio ↓", "SSIM (blurred) ↑", "edge corr ↑", "s / image"]
    body = [
        [
            r.style,
            r.method,
            f"{np.mean(r.palette):.3f}",
            f"{np.mean(r.texture):.3f}",
            f"{np.mean(r.ssim):.3f}",
            f"{np.mean(r.edges):.3f}",
            f"{r.seconds:.2f}",
        ]
        for r in rows
    ]
    methods = list(dict.fromkeys(r.method for r in rows))
    for m in methods:
        rs = [r for r in rows if r.method == m]
        body.append(
            ["**all**", m]
            + [f"{np.mean([np.mean(getattr(r, k)) for r in rs]):.3f}" for k in ("palette", "texture", "ssim", "edges")]
            + [f"{np.mean([r.seconds for r in rs]):.2f}"]
        )
    lines += table(header, body) + [""]
    if learning:
        lines += [
            f"Learning a new {STYLE_SIDE} px style (`imgdiff stylize` in a fresh cache, whole command): "
            f"**{learning[0]:.1f} s**; the same command with the style cached: **{learning[1]:.1f} s**.",
            "",
        ]
    lines += ["Gallery (content | style | Reinhard | histogram | patch | imgdiff 0.3 | 0.45 | 0.6):", ""]
    for s in dict.fromkeys(r.style for r in rows):
        lines += [f"![{s} {i}](bench/style_{s}_{i}.jpg)" for i in range(2)] + [""]
    return lines


def generate_section(rows: list) -> list[str]:
    if not rows:
        return []
    from benchmarks.measure import GEN_SIDE, generate_zooms

    lines = [
        "## Generated textures",
        "",
        f"`imgdiff generate --num N --size {GEN_SIDE}` (seeds 0..N-1, default steps) with and without "
        "`--tileable`, and in the example style (`--style docs/examples/style.png`, learnt in a fresh cache). "
        "Seam ratio: mean absolute step across the wrap-around seams over the mean step between "
        "neighbouring pixels inside (1 = seamless when tiled); texture distance: sliced Wasserstein "
        "distance of mean-removed 5x5 lightness patches at 3 scales to the reference (held-out "
        "photographic textures of `build-photos.sh`, or crops of the style image), and for the held-out "
        "textures also to their crops area-downscaled by the zooms the shipped `generate` was trained "
        f"at ({', '.join(f'{z:g}' for z in generate_zooms())}: the middles of its crop-zoom range, the way its "
        "training runs validate): a model trained on zoomed-out crops draws denser texture than the "
        "photographs show at their own scale, which the first distance counts against it (third control); "
        "and the few held-out textures can differ in local contrast from the ones the model learnt from "
        "(they have less: docs/TRAINING.md), so a model drawing exactly its training textures would score "
        "the fourth control's distance, not the first's; "
        "sharpness: mean "
        "squared Laplacian of the lightness over the reference's (below 1 = smoother). The controls "
        "are other crops of the reference (what a real texture scores) and those crops blurred "
        "(what a smear scores); `benchmarks/generate.py`. Time: whole CLI call per sample, style "
        "learning included.",
        "",
    ]
    body = [
        [r.label, r.reference, str(r.samples), f"{r.seam:.2f}", f"{r.distance:.3f}",
         "—" if r.distance_zoomed is None else f"{r.distance_zoomed:.3f}", f"{r.sharpness:.2f}",
         f"{r.seconds:.1f}" if r.seconds else "—"]
        for r in rows
    ]  # fmt: skip
    header = ["samples", "reference", "n", "seam ratio", "texture distance ↓", "at training zooms ↓", "sharpness"]
    lines += table([*header, "s / sample"], body)
    lines += ["", "First `--tileable` sample of each, tiled 2x2 (plain | example style):", ""]
    lines += ["![generate --tileable, tiled 2x2](bench/generate_tiled.jpg)", ""]
    return lines
