"""`imgdiff`: denoise, upscale, stylize and generate images with diffusion models.

Every image command shares one set of options (added by `image_command`) and one batch loop
(`run_batch`), so files, folders, globs, stdin/stdout, --json and exit codes behave the same.
"""

import functools
import inspect
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer import _click as click  # Typer vendors its own click: its exceptions are these
from typer.core import TyperGroup

from . import __version__
from .batch import (
    Job,
    check_not_an_input,
    clean_stale_temps,
    drop_own_outputs,
    expand_inputs,
    output_dir,
    plan_outputs,
)
from .defaults import DEFAULT_TILE, DENOISE_ENSEMBLE
from .errors import ImgdiffError
from .io import (
    DEFAULT_MAX_PIXELS,
    ImageData,
    describe_pixels,
    encode_image,
    lost_on_write,
    output_format,
    read_image,
    stdout_is_terminal,
    write_atomic,
    write_stdout,
)
from .report import Reporter, silence_stdout


class OneLineErrors(TyperGroup):
    """Usage errors as one `imgdiff: error:` line on stderr and exit 2, like the errors the
    commands report themselves (Typer's default is a boxed panel of five lines)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            print(e.format_message(), file=sys.stderr)
            sys.exit(2)
        except click.ClickException as e:
            where = f" (see {e.ctx.command_path} --help)" if getattr(e, "ctx", None) else ""
            print(f"imgdiff: error: {e.format_message()}{where}", file=sys.stderr)
            sys.exit(e.exit_code)
        except typer.Abort:
            print("imgdiff: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Restore and create images with conditional diffusion models.",
)
models_app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, help="List, inspect and verify checkpoints.")
app.add_typer(models_app, name="models")


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so temp files are cleaned up like on Ctrl-C."""


@dataclass
class Common:
    output: Optional[str]
    suffix: Optional[str]
    overwrite: bool
    skip_existing: bool
    recursive: bool
    steps: Optional[int]
    seed: int
    device: str
    precision: str
    tile: Optional[int]
    tile_overlap: int
    model: Optional[str]
    json: bool
    quiet: bool
    threads: Optional[int]
    max_pixels: int


def _opt(*names: str, help: str, **kw):
    return typer.Option(*names, help=help, **kw)


SEED_MAX = 2**32 - 1  # the noise seeds are derived as seed * 1_000_003 + step, which must fit in 64 bits


def finite(value: Optional[float]) -> Optional[float]:
    """Option callback: NaN and infinities pass Click's range checks (every comparison is false)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value}: expected a finite number")
    return value


def thread_limit() -> int:
    """More threads than this only oversubscribes; OpenMP crashes outright near 100,000."""
    return max(64, 8 * (os.cpu_count() or 1))


def check_threads(value: Optional[int]) -> Optional[int]:
    if value is not None and value > thread_limit():
        raise typer.BadParameter(f"{value}: at most {thread_limit()} on this machine ({os.cpu_count()} cores)")
    return value


COMMON_PARAMS = [
    ("output", Annotated[Optional[str], _opt("-o", "--output", help="Output file, folder, or - for stdout.")], None),
    (
        "suffix",
        Annotated[Optional[str], _opt("--suffix", help="Added to output names (default next to inputs: .TASK).")],
        None,
    ),
    ("overwrite", Annotated[bool, _opt("--overwrite", help="Replace existing outputs.")], False),
    ("skip_existing", Annotated[bool, _opt("--skip-existing", help="Leave existing outputs alone, silently.")], False),
    ("recursive", Annotated[bool, _opt("--recursive", "-r", help="Descend into sub-folders.")], False),
    (
        "steps",
        Annotated[Optional[int], _opt("--steps", min=1, max=1000, help="Sampling steps (1 = maximum fidelity).")],
        None,
    ),
    ("seed", Annotated[int, _opt("--seed", min=0, max=SEED_MAX, help="Seed of the sampling noise.")], 0),
    ("device", Annotated[str, _opt("--device", help="auto, cpu, cuda or cuda:N.")], "auto"),
    (
        "precision",
        Annotated[
            str,
            _opt(
                "--precision",
                help="auto (CUDA fp16, bf16 on CPUs with AMX or AVX512-BF16, else fp32), fp32, fp16, bf16.",
            ),
        ],
        "auto",
    ),
    (
        "tile",
        Annotated[
            Optional[int],
            _opt("--tile", min=0, max=65536, help=f"Tile size in pixels (0 = whole image; default {DEFAULT_TILE})."),
        ],
        None,
    ),
    ("tile_overlap", Annotated[int, _opt("--tile-overlap", min=0, max=4096, help="Overlap between tiles.")], 32),
    (
        "model",
        Annotated[Optional[str], _opt("--model", help="Shipped name, .safetensors path or hf://org/repo/file.")],
        None,
    ),
    ("json", Annotated[bool, _opt("--json", help="One JSON line per result on stdout.")], False),
    ("quiet", Annotated[bool, _opt("--quiet", "-q", help="Only errors on stderr.")], False),
    (
        "threads",
        Annotated[
            Optional[int],
            _opt("--threads", min=1, callback=check_threads, help="CPU threads (default: all available cores)."),
        ],
        None,
    ),
    (
        "max_pixels",
        Annotated[
            int, _opt("--max-pixels", min=1, max=10**12, help="Refuse larger images (decompression-bomb guard).")
        ],
        DEFAULT_MAX_PIXELS,
    ),
]


def image_command(fn: Callable) -> Callable:
    """Append the common options to a command's signature and hand them over as `common`."""
    sig = inspect.signature(fn)
    own = [p for p in sig.parameters.values() if p.name != "common"]
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a, default=d) for n, a, d in COMMON_PARAMS]
    names = [n for n, _, _ in COMMON_PARAMS]

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        common = Common(**{n: kw.pop(n) for n in names})
        install_signal_handlers()
        try:
            return fn(*args, common=common, **kw)
        except KeyboardInterrupt:
            print("imgdiff: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except Terminated:
            print("imgdiff: terminated", file=sys.stderr)
            raise typer.Exit(143) from None

    params = own + extra
    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__
    return wrapper


def version_callback(value: bool) -> None:
    if value:
        print(f"imgdiff {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Restore and create images with conditional diffusion models."""


def fail_usage(msg: str) -> None:
    print(f"imgdiff: error: {msg}", file=sys.stderr)
    raise typer.Exit(2)


def setup_runtime(common: Common, ensemble: int = 1):
    from .device import make_runtime

    try:
        return make_runtime(common.device, common.precision, common.tile, common.tile_overlap, common.threads, ensemble)
    except ImgdiffError as e:
        fail_usage(str(e))


def load_model(spec: str, task: str, rt, rep: Reporter):
    """A name that is neither shipped nor a file is a usage error (2); a file that will not load, 1."""
    from .errors import UnknownModel
    from .hub import load

    try:
        return load(spec, task, rt.device)
    except UnknownModel as e:
        fail_usage(f"--model {e}")
    except ImgdiffError as e:
        rep.error(str(e))
        raise typer.Exit(1) from None


def metadata(task: str, model, rt, common: Common, steps: int, **params) -> dict:
    """What a PNG's `imgdiff` chunk records: enough to reproduce the pixels (precision changes the last bits)."""
    from .device import cpu_bf16_path, precision_name

    isa = cpu_bf16_path() if rt.device.type == "cpu" and rt.dtype != torch_float32() else None
    record = {
        "task": task,
        "model": model.name,
        "model_sha256": model.sha256,
        "steps": steps,
        "seed": common.seed,
        "device": rt.device.type,
        "precision": precision_name(rt.dtype),
        **({"bf16_path": isa or "emulated"} if rt.device.type == "cpu" and rt.dtype != torch_float32() else {}),
        "ensemble": rt.ensemble,
        "tile": rt.tile,
        "tile_overlap": rt.overlap,
        "imgdiff": __version__,
        **params,
    }
    return {"Software": f"imgdiff {__version__}", "imgdiff": json.dumps(record, sort_keys=True)}


def torch_float32():
    import torch

    return torch.float32


def install_signal_handlers() -> None:
    def on_term(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, on_term)


def run_batch(
    inputs: list[str],
    common: Common,
    task: str,
    default_suffix: str,
    process: Callable[[ImageData, Reporter], tuple[ImageData, dict, dict]],
    rep: Reporter,
    output_ext: Optional[str] = None,
    protected: tuple[Path, ...] = (),
) -> int:
    """Process every input; returns the exit code (0 all done, 1 some failed)."""
    jobs = plan_batch(inputs, common, task, default_suffix, rep, output_ext, protected)
    return run_jobs(jobs, common, task, process, rep)


def plan_batch(
    inputs: list[str],
    common: Common,
    task: str,
    default_suffix: str,
    rep: Reporter,
    output_ext: Optional[str] = None,
    protected: tuple[Path, ...] = (),
) -> list[Job]:
    """Inputs to jobs with their outputs, every usage error raised before any model runs."""
    if common.overwrite and common.skip_existing:
        fail_usage("--overwrite and --skip-existing exclude each other")
    try:
        jobs, many = expand_inputs(inputs, common.recursive)
        suffix = (common.suffix or default_suffix) if common.output is None else (common.suffix or "")
        dropped = drop_own_outputs(jobs, task, suffix, output_dir(common.output, many))
        plan_outputs(jobs, many, common.output, common.suffix, default_suffix, output_ext, protected)
    except ImgdiffError as e:
        fail_usage(str(e))
    for job, reason in dropped:
        (rep.info if job.expanded else rep.warn)(f"{job.label}: skipped, {reason} (name it alone to process it)")
    check_stdout(jobs, common)
    if not any(needs_work(job, common) for job in jobs):
        finish(run_jobs(jobs, common, task, None, rep))  # every job fails or is skipped: load no model
    return jobs


def needs_work(job: Job, common: Common) -> bool:
    """Whether run_job would get as far as the model for this job."""
    if job.error:
        return False
    out = job.output
    return out is None or common.overwrite or not (out.exists() or out.is_symlink())


def check_stdout(jobs: list[Job], common: Common) -> None:
    """Image bytes and JSON lines cannot share stdout, and image bytes do not go to a terminal."""
    to_stdout = any(j.output is None and not j.error for j in jobs)
    if to_stdout and common.json:
        fail_usage("--json and an image on stdout (-o -, or stdin without -o) both want stdout; give -o FILE")
    if to_stdout and stdout_is_terminal():
        fail_usage("not writing image bytes to a terminal; redirect stdout or give -o FILE")


def run_jobs(jobs: list[Job], common: Common, task: str, process, rep: Reporter, read=None) -> int:
    failed = 0
    clean_stale_temps({j.output.parent for j in jobs if j.output is not None})
    with rep.files(len(jobs), task):
        for job in jobs:
            ok = run_job(job, common, task, process, rep, read)
            failed += not ok
            rep.advance_file()
    if failed and len(jobs) > 1:
        rep.warn(f"{failed} of {len(jobs)} inputs failed")
    return 1 if failed or rep.stdout_lost else 0


def run_job(job: Job, common: Common, task: str, process, rep: Reporter, read=None) -> bool:
    """One input to one output; every failure is one stderr line and a False return.
    `read(job)` replaces decoding the input (generate has none)."""
    record = {"input": job.label, "output": "-" if job.output is None else str(job.output), "task": task}
    t0 = time.time()

    def failed(msg: str) -> bool:
        rep.error(msg)
        rep.result({**record, "status": "error", "error": msg})
        return False

    if job.error:
        return failed(job.error)
    out = job.output
    if out is not None and (out.exists() or out.is_symlink()):
        if common.skip_existing:
            rep.info(f"{job.label}: {out} exists, skipped")
            rep.result({**record, "status": "skipped"})
            return True
        if not common.overwrite:
            return failed(f"{job.label}: {out} already exists (use --overwrite or --skip-existing)")
        if out.is_dir():
            return failed(f"{job.label}: {out} is a directory")
    try:
        fmt = "PNG" if out is None else output_format(out)
        if out is not None:
            _ensure_parent(out, common)  # before the model runs: a bad target costs nothing
        if read is not None:
            img = read(job)
        else:
            src = sys.stdin.buffer.read() if job.source is None else job.source
            img = read_image(src, name=job.label, max_pixels=common.max_pixels)
            for w in img.warnings:
                rep.warn(w)
        rep.context = job.label
        result, meta, extra = process(img, rep)
        for w in lost_on_write(result, fmt):
            rep.warn(f"{job.label} -> {record['output']}: {w}")
        data = encode_image(result, fmt, meta)
        if out is None:
            write_stdout(data)
        else:
            write_atomic(out, data, overwrite=common.overwrite)
    except ImgdiffError as e:
        return failed(str(e))
    except FileExistsError:
        return failed(f"{job.label}: {out} appeared meanwhile; not replaced (use --overwrite)")
    except BrokenPipeError:
        silence_stdout()
        return failed(f"{job.label}: stdout was closed before the image was written")
    except OSError as e:
        if out is None:
            silence_stdout()  # or the interpreter's final flush fails again, with a traceback
        target = "stdout" if out is None else out
        return failed(f"{job.label}: cannot write {target}: {e.strerror or e}")
    except MemoryError:
        return failed(f"{job.label}: out of memory (try a smaller --tile)")
    except Exception as e:  # a bug must cost one file, not the batch; IMGDIFF_DEBUG=1 shows the traceback
        if os.environ.get("IMGDIFF_DEBUG"):
            raise
        first = str(e).splitlines()[0][:200] if str(e) else ""
        return failed(f"{job.label}: internal error {type(e).__name__}: {first} (IMGDIFF_DEBUG=1 for details)")
    seconds = round(time.time() - t0, 3)
    rep.info(f"{job.label} -> {record['output']}  ({', '.join(f'{k} {v}' for k, v in extra.items())}, {seconds} s)")
    rep.result({**record, "status": "ok", "seconds": seconds, **extra})
    return True


def _ensure_parent(out: Path, common: Common) -> None:
    """Create folders under an -o DIR; a single -o FILE's folder must already exist."""
    parent = out.parent
    if parent.is_dir():
        return
    if common.output and Path(common.output) != out:
        try:
            parent.mkdir(parents=True, exist_ok=True)
            return
        except (FileExistsError, NotADirectoryError):
            raise ImgdiffError(f"cannot create folder {parent}: a file is in the way") from None
        except OSError as e:
            raise ImgdiffError(f"cannot create folder {parent}: {e.strerror or e}") from None
    raise ImgdiffError(f"folder {parent} does not exist")


def finish(code: int) -> None:
    raise typer.Exit(code)


InputsArg = Annotated[
    list[str], typer.Argument(help="Image files, folders, globs, or - for stdin.", show_default=False)
]
EnsembleOpt = Annotated[
    int,
    typer.Option(
        help="Average the estimate over N rotations/flips of each tile (1-8): more accurate at N times "
        "the network cost."
    ),
]


def load_restore(spec: Optional[str], scale: int, degradation: str, rt, rep: Reporter):
    """A conditional restore checkpoint, checked to be for this scale and kind of input."""
    from .tasks import restore_model_name

    model = load_model(spec or restore_model_name(scale, degradation), "restore", rt, rep)
    got = (int(model.config.get("scale", 0)), model.config.get("degradation", "bicubic"))
    if got != (scale, degradation):
        fail_usage(f"--model {model.name}: a model for x{got[0]} {got[1]} inputs cannot do x{scale} {degradation}")
    return model


def parse_sigma(sigma: str, mode: str) -> Optional[float]:
    """--sigma: None for auto, else a finite level >= 0 (the model's upper limit is checked once loaded)."""
    if sigma == "auto":
        return None
    if mode == "real":
        fail_usage("--sigma applies to --mode gaussian; --mode real is blind")
    try:
        value = float(sigma)
    except ValueError:
        fail_usage(f"--sigma {sigma}: expected a number or auto")
    if not math.isfinite(value) or not 0 <= value <= 255:
        fail_usage(f"--sigma {sigma}: expected a level in 0..255 or auto")
    return value


@app.command()
@image_command
def denoise(
    inputs: InputsArg,
    sigma: Annotated[
        str, typer.Option(help="White-noise level on the 0..255 scale (implies --mode gaussian), or auto.")
    ] = "auto",
    mode: Annotated[
        str,
        typer.Option(
            help="auto (per image: white noise -> gaussian, camera-like or JPEG noise -> real), gaussian "
            "(sigma-conditioned) or real (blind: camera noise, JPEG)."
        ),
    ] = "auto",
    ensemble: EnsembleOpt = DENOISE_ENSEMBLE,
    common: Common = None,
) -> None:
    """Remove noise: white noise with a known or estimated sigma, or real camera noise and JPEG."""
    from .noise import read_noise
    from .pipelines.denoise import denoise_image, resolve_sigma
    from .pipelines.restore import restore_image

    rep = Reporter(common.quiet, common.json)
    if mode not in ("auto", "gaussian", "real"):
        fail_usage(f"--mode {mode}: expected auto, gaussian or real")
    fixed = parse_sigma(sigma, mode)
    if fixed is not None:
        mode = "gaussian"  # --sigma N means white Gaussian noise of that level
    rt = setup_runtime(common, ensemble)
    jobs = plan_batch(inputs, common, "denoise", ".denoised", rep)
    steps = common.steps or 1
    models: dict[str, object] = {}

    def model_for(kind: str):
        """Each model once, when the first image that needs it comes (--model names the one asked for)."""
        if kind not in models:
            if kind == "real":
                models[kind] = load_restore(common.model if mode == "real" else None, 1, "real", rt, rep)
            else:
                models[kind] = load_model(
                    (common.model if mode == "gaussian" else None) or "denoise", "denoise", rt, rep
                )
        return models[kind]

    if mode != "auto":
        model = model_for("real" if mode == "real" else "gaussian")
        limit = model.config.get("sigma_max", 0) * 127.5
        if fixed is not None and fixed > limit + 1e-6:
            fail_usage(f"--sigma {sigma}: outside the range of {model.name}, 0..{limit:.0f}")
    elif common.model:
        fail_usage("--model picks one model: give --mode gaussian or --mode real with it")

    def process(img, rep):
        kind, reading = mode, None
        if mode == "auto":
            reading = read_noise(img.pixels)
            kind = "real" if reading.kind == "camera" else "gaussian"
        found = {} if reading is None else {"noise": reading.kind, "noise_ratio": round(reading.ratio, 2)}
        if kind == "real":
            model = model_for("real")
            out = restore_image(img, model, rt, steps, common.seed, rep.step)
            meta = metadata("denoise", model, rt, common, steps, mode="real", mode_asked=mode, **found)
            return out, meta, {"mode": "real", "steps": steps, **found}
        model = model_for("gaussian")
        s = resolve_sigma(img, fixed if reading is None else reading.sigma, model)
        if fixed is None and s < 1:
            rep.warn(f"{rep.context}: estimated noise level is {s:.1f}: nothing to remove")
        out = denoise_image(img, model, rt, s, steps, common.seed, rep.step)
        meta = metadata(
            "denoise", model, rt, common, steps, mode="gaussian", mode_asked=mode, sigma=round(s, 3), sigma_mode=sigma
        )
        return out, meta, {"mode": "gaussian", "sigma": round(s, 2), "steps": steps, **found}

    finish(run_jobs(jobs, common, "denoise", process, rep))


@app.command()
@image_command
def upscale(
    inputs: InputsArg,
    scale: Annotated[int, typer.Option(help="Magnification: 2 or 4.")] = 4,
    mode: Annotated[
        str,
        typer.Option(
            help="bicubic (clean downscaled inputs) or real (photos with blur, camera noise, JPEG; "
            "x4 ships upscale-x4-real, x2 needs --model)."
        ),
    ] = "bicubic",
    ensemble: EnsembleOpt = 1,
    common: Common = None,
) -> None:
    """Enlarge images 2x or 4x."""
    from .pipelines.restore import restore_image

    if scale not in (2, 4):
        fail_usage(f"--scale {scale}: expected 2 or 4")
    if mode not in ("bicubic", "real"):
        fail_usage(f"--mode {mode}: expected bicubic or real")
    rep = Reporter(common.quiet, common.json)
    rt = setup_runtime(common, ensemble)
    jobs = plan_batch(inputs, common, "upscale", f".x{scale}", rep)
    model = load_restore(common.model, scale, mode, rt, rep)
    steps = common.steps or 1

    def process(img, rep):
        out = restore_image(img, model, rt, steps, common.seed, rep.step)
        return (
            out,
            metadata("upscale", model, rt, common, steps, scale=scale, mode=mode),
            {"scale": scale, "steps": steps},
        )

    finish(run_jobs(jobs, common, "upscale", process, rep))


@app.command()
@image_command
def stylize(
    inputs: InputsArg,
    style: Annotated[Path, typer.Option(help="Style image (or a style .safetensors saved with --save-style).")],
    strength: Annotated[
        float, typer.Option(min=0.0, max=1.0, callback=finite, help="0 keeps the content, 1 replaces it.")
    ] = 0.45,
    save_style: Annotated[Optional[Path], typer.Option(help="Also save the learnt style model here.")] = None,
    style_steps: Annotated[
        int, typer.Option(min=1, max=100_000, help="Fine-tuning steps when learning a new style.")
    ] = 300,
    common: Common = None,
) -> None:
    """Repaint images in the colours and textures of a style image."""
    from .hub import load
    from .pipelines.stylize import style_model, stylize_image

    rep = Reporter(common.quiet, common.json)
    rt = setup_runtime(common)
    jobs = plan_batch(inputs, common, "stylize", ".stylized", rep, protected=(style,))
    if save_style is not None:
        if save_style.suffix != ".safetensors":
            fail_usage(f"--save-style {save_style}: a style model is saved as .safetensors")
        try:
            check_not_an_input(save_style, jobs, (style,), "--save-style")
        except ImgdiffError as e:
            fail_usage(str(e))
        if any(j.output is not None and j.output.resolve() == save_style.resolve() for j in jobs):
            fail_usage(f"--save-style {save_style} is also an image output")
    t0 = time.time()
    try:
        if style.suffix == ".safetensors":
            smodel, cached = load(str(style), "generate", rt.device), True
        else:
            base = load(common.model or "generate", "generate", rt.device)
            simg = read_image(style, max_pixels=common.max_pixels)
            rep.info(f"learning the style of {style} (cached after the first run)")
            smodel, cached = style_model(
                base, simg, rt.device, common.seed, style_steps, save_style, common.overwrite, rep.step, rep.warn
            )
    except ImgdiffError as e:
        rep.error(str(e) if str(style) in str(e) else f"{style}: {e}")
        finish(1)
    rep.info(f"style model {'from cache' if cached else 'trained'} in {time.time() - t0:.1f} s")
    steps = common.steps or 12

    def process(img, rep):
        out = stylize_image(img, smodel, rt, strength, steps, common.seed, rep.step)
        meta = metadata("stylize", smodel, rt, common, steps, strength=strength, style=str(style))
        return out, meta, {"strength": strength, "steps": steps, "style_cached": cached}

    finish(run_jobs(jobs, common, "stylize", process, rep))


def parse_size(size: str, max_pixels: int) -> tuple[int, int]:
    """--size N or WxH: positive, and within --max-pixels like any input image."""
    try:
        w, h = size.lower().split("x") if "x" in size.lower() else (size, size)
        width, height = int(w), int(h)
    except ValueError:
        fail_usage(f"--size {size}: expected N or WxH")
        raise
    if width < 1 or height < 1:
        fail_usage(f"--size {size}: both sides must be positive")
    if width * height > max_pixels:
        fail_usage(
            f"--size {size}: {width}x{height} is {describe_pixels(width * height)}, "
            f"over --max-pixels {describe_pixels(max_pixels)}"
        )
    return width, height


@app.command()
@image_command
def generate(
    num: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many images.")] = 1,
    size: Annotated[str, typer.Option(help="N or WxH, multiples of 16; above 64 is sampled patch-wise.")] = "64",
    tileable: Annotated[bool, typer.Option(help="Make the texture seamless when tiled.")] = False,
    common: Common = None,
) -> None:
    """Generate natural textures from noise (numbered files into -o DIR, or -o FILE / -)."""
    from .pipelines.generate import generate_image

    rep = Reporter(common.quiet, common.json)
    if not common.output:
        fail_usage("generate needs -o DIR, -o FILE or -o -")
    width, height = parse_size(size, common.max_pixels)
    if common.output == "-" and num > 1:
        fail_usage("-o - takes a single image (--num 1)")
    if common.seed + num - 1 > SEED_MAX:
        fail_usage(f"--seed {common.seed} --num {num}: the seeds of the images would pass {SEED_MAX}")
    rt = setup_runtime(common)
    jobs = generate_jobs(common, num)
    check_stdout(jobs, common)
    model = load_model(common.model or "generate", "generate", rt, rep)
    m = model.denoiser.net.multiple
    if width % m or height % m:
        fail_usage(f"--size {size}: both sides must be multiples of {m} for {model.name}")
    steps = common.steps or 24
    seeds = {id(job): common.seed + i for i, job in enumerate(jobs)}

    def process(job: Job, rep: Reporter):
        seed = seeds[id(job)]
        img = generate_image(model, rt, width, height, steps, seed, tileable, rep.step)
        meta = metadata("generate", model, rt, common, steps, size=f"{width}x{height}", tileable=tileable, seed=seed)
        return img, meta, {"seed": seed, "size": f"{width}x{height}"}

    finish(run_jobs(jobs, common, "generate", process, rep, read=lambda job: job))


def generate_jobs(common: Common, num: int) -> list[Job]:
    """Numbered outputs: -o DIR gets generated-SEED.png, -o FILE (or FILE-0001...), -o - stdout."""
    out = Path(common.output)
    try:
        out_dir = output_dir(common.output, many=False)
    except ImgdiffError as e:
        fail_usage(str(e))
    if common.output == "-":
        targets: list[Optional[Path]] = [None]
    elif out_dir is None:
        output_format(out)
        targets = [out] if num == 1 else [out.with_name(f"{out.stem}-{i + 1:04d}{out.suffix}") for i in range(num)]
    else:
        targets = [out_dir / f"generated-{common.seed + i:04d}{common.suffix or ''}.png" for i in range(num)]
    return [Job(None, None, f"generate#{i + 1} (seed {common.seed + i})", t) for i, t in enumerate(targets)]


@models_app.command("list")
def models_list(json_out: Annotated[bool, typer.Option("--json", help="JSON lines on stdout.")] = False) -> None:
    """The shipped checkpoints."""
    from .checkpoint import read_config
    from .hub import manifest, weights_dir

    for name, entry in sorted(manifest().items()):
        cfg = read_config(weights_dir() / entry["file"])
        row = {
            "name": name,
            "task": cfg["task"],
            "file": entry["file"],
            "sha256": entry["sha256"],
            "validation": cfg.get("validation", {}),
        }
        print(json.dumps(row) if json_out else f"{name:<12} {cfg['task']:<9} {entry['sha256'][:12]}  {entry['file']}")


@models_app.command("info")
def models_info(name: Annotated[str, typer.Argument(help="Shipped name or .safetensors path.")]) -> None:
    """A checkpoint's full config (architecture, training, validation) as JSON."""
    from .checkpoint import read_config
    from .hub import resolve

    try:
        path, _ = resolve(name)
        print(json.dumps(read_config(path), indent=2, sort_keys=True))
    except ImgdiffError as e:
        print(f"imgdiff: error: {e}", file=sys.stderr)
        raise typer.Exit(1) from None


@models_app.command("verify")
def models_verify() -> None:
    """Check every shipped checkpoint against the manifest's sha256."""
    from .hub import verify_all

    try:
        rows = verify_all()
    except ImgdiffError as e:
        print(f"imgdiff: error: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    bad = 0
    for name, ok, msg in rows:
        print(f"{name:<12} {'ok' if ok else 'FAILED'}" + ("" if ok else f"  {msg}"))
        bad += not ok
    raise typer.Exit(1 if bad else 0)


@app.command()
def train(
    task: Annotated[str, typer.Option(help="denoise, upscale-x2, upscale-x4 or generate.")],
    data: Annotated[
        list[str],
        typer.Option(
            help="Folder of training images (a held-out slice is kept for validation); repeat for several, "
            "FOLDER@SHARE to give one a fixed share of the crops (default: in proportion to area)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Best checkpoint (EMA, fp16) is written here.")],
    run_dir: Annotated[Optional[Path], typer.Option(help="Resumable state and CSV log (default runs/TASK).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from RUN_DIR/state.safetensors.")] = False,
    init: Annotated[Optional[Path], typer.Option(help="Start from these weights with a fresh optimiser.")] = None,
    net: Annotated[
        str,
        typer.Option(
            help="Network-shape overrides, e.g. 'unshuffle=4,blocks=3' (matching tensors of --init kept; "
            "ignored with --resume, whose state fixes the shape)."
        ),
    ] = "",
    minutes: Annotated[
        float,
        typer.Option(
            min=0.01, max=100_000, callback=finite, help="Wall-clock budget; the LR anneals over its last quarter."
        ),
    ] = 60.0,
    max_steps: Annotated[int, typer.Option(min=0, help="Stop after N steps instead (0 = use --minutes).")] = 0,
    batch: Annotated[int, typer.Option(min=1)] = 16,
    crop: Annotated[int, typer.Option(min=16, help="Training crop size (generate uses its model size).")] = 96,
    lr: Annotated[float, typer.Option(min=0.0, max=1.0, callback=finite)] = 4e-4,
    val_every: Annotated[int, typer.Option(min=1, help="Validate and checkpoint every N steps.")] = 500,
    seed: Annotated[int, typer.Option(min=0, max=SEED_MAX)] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    threads: Annotated[Optional[int], typer.Option(min=1, callback=check_threads, help="CPU threads.")] = None,
    bf16: Annotated[
        bool, typer.Option(help="bf16 autocast (CUDA, or a CPU with AMX/AVX512-BF16: faster steps).")
    ] = False,
    select: Annotated[
        str, typer.Option(help="The --data folder whose held-out slice chooses checkpoints (default: the last).")
    ] = "",
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train (or resume training) a checkpoint on folders of clean images."""
    from .device import resolve_device
    from .tasks import TRAIN_TASKS
    from .train.data import check_shares
    from .train.trainer import TrainOptions, parse_data, parse_net, resolve_select
    from .train.trainer import train as run_training

    if task not in TRAIN_TASKS:
        fail_usage(f"--task {task}: expected one of {', '.join(TRAIN_TASKS)}")
    try:
        resolve_device(device)
        net_overrides = parse_net(net)
        sources = [parse_data(d) for d in data]
        check_shares([src.share for src in sources])
        resolve_select(sources, select)
    except (ImgdiffError, ValueError) as e:
        fail_usage(str(e))
    for src in sources:
        if not src.folder.is_dir():
            fail_usage(f"--data {src.folder}: not a folder")
    opts = TrainOptions(
        task=task,
        data=sources,
        out=out,
        run_dir=run_dir or Path("runs") / task,
        minutes=minutes,
        max_steps=max_steps,
        batch=batch,
        crop=crop,
        lr=lr,
        val_every=val_every,
        seed=seed,
        device=device,
        threads=threads or (os.cpu_count() or 1),
        bf16=bf16,
        resume=resume,
        init=init,
        net=net_overrides,
        quiet=quiet,
        command=" ".join(["imgdiff", *sys.argv[1:]]),
        select=select,
    )
    figures = run_training(opts)
    print(json.dumps({"task": task, "out": str(out), "validation": figures}))


@app.command("eval")
def eval_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder of clean reference images.")],
    task: Annotated[str, typer.Option(help="denoise, upscale-x2 or upscale-x4.")] = "denoise",
    sigma: Annotated[
        float, typer.Option(min=0.0, max=255.0, callback=finite, help="Noise level for denoise (0..255 scale).")
    ] = 25.0,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="Sampling steps.")] = 1,
    limit: Annotated[int, typer.Option(min=0, help="Use only the first N images (0 = all).")] = 0,
    seed: Annotated[int, typer.Option(min=0, max=SEED_MAX, help="Seed of the synthetic noise and the sampler.")] = 0,
    model: Annotated[Optional[str], typer.Option(help="Checkpoint (default: the shipped one for the task).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    tile: Annotated[Optional[int], typer.Option(min=0, max=65536, help=f"Tile size (default {DEFAULT_TILE}).")] = None,
    grid: Annotated[Optional[Path], typer.Option(help="Write an input | output | reference picture here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """PSNR/SSIM of imgdiff against baselines on clean images degraded with a fixed seed."""
    from .eval.evaluate import evaluate_denoise, evaluate_upscale
    from .train.data import list_images

    if task not in ("denoise", "upscale-x2", "upscale-x4"):
        fail_usage(f"--task {task}: expected denoise, upscale-x2 or upscale-x4")
    if not folder.is_dir():
        fail_usage(f"{folder}: not a folder")
    if not list_images(folder):
        fail_usage(f"{folder}: no images to evaluate on")
    common = Common(
        None,
        None,
        False,
        False,
        False,
        steps,
        seed,
        device,
        "auto",
        tile,
        32,
        model,
        json_out,
        False,
        None,
        DEFAULT_MAX_PIXELS,
    )
    rt = setup_runtime(common)
    rep = Reporter(False, json_out)
    if task == "denoise":
        m = load_model(model or "denoise", "denoise", rt, rep)
        res = evaluate_denoise(folder, m, rt, sigma, steps, limit, seed, grid)
        title = f"denoise sigma={sigma:g} on {folder} (RGB PSNR, dB)"
    else:
        m = load_restore(model, int(task[-1]), "bicubic", rt, rep)
        res = evaluate_upscale(folder, m, rt, steps, limit, seed, grid)
        title = f"{task} on {folder} (Y PSNR, border {task[-1]} px shaved)"
    if json_out:
        print(json.dumps({"task": task, "folder": str(folder), "sigma": sigma, "steps": steps, "results": res}))
        return
    print(title)
    print(f"{'method':<10} {'PSNR':>8} {'SSIM':>8} {'s/MP':>8} {'images':>7}")
    for name, r in res.items():
        print(f"{name:<10} {r['psnr']:>8.2f} {r['ssim']:>8.4f} {r['s_per_mp']:>8.2f} {r['images']:>7}")


@models_app.command("manifest")
def models_manifest(
    folder: Annotated[Optional[Path], typer.Argument(help="Weights folder (default: shipped).")] = None,
) -> None:
    """Rewrite manifest.json and MODEL_CARDS.md from the checkpoints in a folder (maintainers)."""
    from .cards import write_manifest
    from .hub import weights_dir

    target = folder or weights_dir()
    for name, entry in write_manifest(target).items():
        print(f"{name:<12} {entry['sha256'][:12]}  {entry['file']}")


def run() -> None:
    """Console entry point. Once the command is done, leave without the interpreter's teardown:
    unloading torch took ~0.4 s of every call (a fifth of a small x4 upscale). Nothing is lost:
    outputs are written and closed atomically before this point, and the streams are flushed here."""
    try:
        app(prog_name="imgdiff")
        code = 0
    except SystemExit as e:
        code = e.code
    except Exception as e:  # a bug outside the per-file guard: still one line (IMGDIFF_DEBUG=1 for the traceback)
        if os.environ.get("IMGDIFF_DEBUG"):
            raise
        first = str(e).splitlines()[0][:200] if str(e) else ""
        print(
            f"imgdiff: error: internal error {type(e).__name__}: {first} (IMGDIFF_DEBUG=1 for details)", file=sys.stderr
        )
        code = 1
    if not isinstance(code, int):  # sys.exit("message") semantics
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the failure was already reported
            pass
    os._exit(code)
