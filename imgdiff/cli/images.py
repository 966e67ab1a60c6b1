"""The four image commands: each checks its options and plans its outputs (batch.plan_batch), then
hands its work object to the shared runner (batch.run_jobs). A work object is the command's
per-image step: its options pickle (so Ray workers get them, imgdiff.cluster) and `prepare` loads
its models once per process."""

import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..batch import Job, check_not_an_input, check_stdout, needs_work, output_dir, plan_batch, run_jobs
from ..defaults import (
    DENOISE_ENSEMBLE,
    DETAIL_RANGE,
    REAL_DETAIL_FIT,
    REAL_DETAIL_MAX,
    REAL_DETAIL_RAMP,
    STYLE_STRENGTH,
)
from ..errors import ImgdiffError
from ..io import describe_pixels, output_format, read_image
from ..report import Reporter
from .options import (
    SEED_MAX,
    Common,
    EnsembleOpt,
    InputsArg,
    fail_usage,
    finish,
    finite,
    image_command,
    load_model,
    load_restore,
    metadata,
    setup_runtime,
)


def plan(inputs: list[str], common: Common, task: str, default_suffix: str, rep: Reporter, **kw) -> list[Job]:
    """The jobs of a command; when none needs work (all fail or exist) they are reported and the
    command ends here, without loading a model."""
    jobs = plan_batch(inputs, common, task, default_suffix, rep, **kw)
    if not any(needs_work(job, common) for job in jobs):
        finish(run_jobs(jobs, common, task, None, rep))
    return jobs


def model_mode(spec: str) -> str:
    """The denoise mode a --model checkpoint serves: a white-noise denoiser or a blind restorer."""
    from ..checkpoint import read_config
    from ..errors import UnknownModel
    from ..hub import resolve

    try:
        return "real" if read_config(resolve(spec)[0]).get("task") == "restore" else "gaussian"
    except UnknownModel as e:
        fail_usage(f"--model {e}")
    except ImgdiffError:
        return "gaussian"  # unreadable: loading it as the white-noise model reports why


@dataclass
class Work:
    """A command's per-image step. Only the dataclass fields (the options) are pickled; the runtime
    and models are rebuilt by `prepare` in the process that runs the images."""

    common: Common

    def __getstate__(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def runtime(self):
        """Built once per process; the commands call it before planning, so a bad --device is a usage error first."""
        if "rt" not in self.__dict__:
            self.rt = setup_runtime(self.common, getattr(self, "ensemble", 1))
        return self.rt

    def prepare(self, rep: Reporter) -> None:
        raise NotImplementedError


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


@image_command
def denoise(
    inputs: InputsArg,
    sigma: Annotated[
        str, typer.Option(help="White-noise level on the 0..255 scale (implies --mode gaussian), or auto.")
    ] = "auto",
    mode: Annotated[
        Literal["auto", "gaussian", "real"],
        typer.Option(
            help="auto (per image: white noise -> gaussian, camera-like or JPEG noise -> real), gaussian "
            "(sigma-conditioned) or real (blind: camera noise, JPEG)."
        ),
    ] = "auto",
    ensemble: EnsembleOpt = DENOISE_ENSEMBLE,
    detail: Annotated[
        Optional[float],
        typer.Option(
            min=DETAIL_RANGE[0],
            max=DETAIL_RANGE[1],
            callback=finite,
            help=f"Gain on the finest detail after denoising (1 = none, the PSNR optimum). Default: 1 for "
            f"white noise; for camera noise it grows with the noise removed, 1 + {REAL_DETAIL_FIT[0]:g} "
            f"s^{REAL_DETAIL_FIT[1]:g} (s its std, 0..255), at most {REAL_DETAIL_MAX:g}, faded in over s "
            f"{REAL_DETAIL_RAMP[0]:g}..{REAL_DETAIL_RAMP[1]:g} (a clean photo is left alone); 1 for film grain.",
        ),
    ] = None,
    common: Common = None,
) -> None:
    """Remove noise: white noise with a known or estimated sigma, or real camera noise and JPEG."""
    rep = Reporter(common.quiet, common.json)
    fixed = parse_sigma(sigma, mode)
    if fixed is not None:
        mode = "gaussian"  # --sigma N means white Gaussian noise of that level
    work = Denoise(common, mode, fixed, sigma, ensemble, detail)
    work.runtime()
    jobs = plan(inputs, common, "denoise", ".denoised", rep)
    if work.mode == "auto" and common.model:
        work.mode = model_mode(common.model)  # one checkpoint: its own task says which mode it serves
    work.prepare(rep)
    finish(run_jobs(jobs, common, "denoise", work, rep))


@dataclass
class Denoise(Work):
    mode: str  # auto, gaussian or real
    fixed: Optional[float]  # --sigma N (None: estimated per image)
    sigma: str  # --sigma as given, recorded in the metadata
    ensemble: int
    detail: Optional[float]  # --detail (None: the mode's default)

    def prepare(self, rep: Reporter) -> None:
        self.runtime()
        self.models: dict[str, object] = {}
        if self.mode != "auto":
            model = self.model_for("real" if self.mode == "real" else "gaussian", rep)
            limit = model.config.get("sigma_max", 0) * 127.5
            if self.fixed is not None and self.fixed > limit + 1e-6:
                fail_usage(f"--sigma {self.sigma}: outside the range of {model.name}, 0..{limit:.0f}")

    def model_for(self, kind: str, rep: Reporter):
        """Each model once, when the first image that needs it comes (--model names the one asked for)."""
        common = self.common
        if kind not in self.models:
            if kind == "real":
                self.models[kind] = load_restore(common.model if self.mode == "real" else None, 1, "real", self.rt, rep)
            else:
                spec = (common.model if self.mode == "gaussian" else None) or "denoise"
                self.models[kind] = load_model(spec, "denoise", self.rt, rep)
        return self.models[kind]

    def __call__(self, img, rep: Reporter):
        import torch

        from ..detail import camera_gain, removed_std, restore_detail
        from ..noise import estimate_sigma, read_noise
        from ..pipelines.denoise import denoise_image, resolve_sigma
        from ..pipelines.restore import restore_image

        common, rt, mode = self.common, self.rt, self.mode
        steps = common.steps or 1
        kind, reading = mode, None
        if mode == "auto":
            reading = read_noise(img.pixels, threads=torch.get_num_threads())
            kind = "real" if reading.blind else "gaussian"
        found = {} if reading is None else {"noise": reading.kind, "noise_ratio": round(reading.ratio, 2)}
        if reading is not None and reading.coarse_ratio is not None:
            found["noise_coarse_ratio"] = round(reading.coarse_ratio, 2)
        if kind == "real":
            model = self.model_for("real", rep)
            est = restore_image(img, model, rt, steps, common.seed, rep.step)
            removed = round(removed_std(img.pixels, est.pixels), 2)
            if self.detail is not None:
                gain = self.detail
            elif reading is not None and reading.kind == "grain":
                gain = 1.0  # the fit is camera noise's; on film grain it sharpens what is left of the grain
            else:
                gain = camera_gain(removed)
            out = restore_detail(est, gain)
            found["noise_removed"] = removed
            meta = metadata("denoise", model, rt, common, steps, mode="real", mode_asked=mode, detail=gain, **found)
            return out, meta, {"mode": "real", "steps": steps, "detail": gain, **found}
        model = self.model_for("gaussian", rep)
        estimate = None
        if self.fixed is None:
            estimate = estimate_sigma(img.pixels) if reading is None else reading.sigma
        s = resolve_sigma(img, self.fixed, model, estimate)
        if estimate is not None and s < 1:
            rep.warn(f"{rep.context}: estimated noise level is {s:.1f}: nothing to remove")
        elif estimate is not None and estimate > s:
            above = f"estimated noise level {estimate:.1f} is above {model.name}'s range"
            rep.warn(f"{rep.context}: {above}; denoising at {s:.0f}")
        gain = 1.0 if self.detail is None else self.detail
        out = restore_detail(denoise_image(img, model, rt, s, steps, common.seed, rep.step), gain)
        meta = metadata(
            "denoise",
            model,
            rt,
            common,
            steps,
            mode="gaussian",
            mode_asked=mode,
            sigma=round(s, 3),
            sigma_mode=self.sigma,
            detail=gain,
        )
        return out, meta, {"mode": "gaussian", "sigma": round(s, 2), "steps": steps, "detail": gain, **found}


@image_command
def upscale(
    inputs: InputsArg,
    scale: Annotated[Literal[2, 4], typer.Option(help="Magnification.")] = 4,
    mode: Annotated[
        Literal["bicubic", "real"],
        typer.Option(
            help="bicubic (clean downscaled inputs) or real (photos with blur, camera noise, JPEG; "
            "x4 ships upscale-x4-real, x2 needs --model)."
        ),
    ] = "bicubic",
    ensemble: EnsembleOpt = 1,
    common: Common = None,
) -> None:
    """Enlarge images 2x or 4x."""
    rep = Reporter(common.quiet, common.json)
    work = Upscale(common, scale, mode, ensemble)
    work.runtime()
    jobs = plan(inputs, common, "upscale", f".x{scale}", rep)
    work.prepare(rep)
    finish(run_jobs(jobs, common, "upscale", work, rep))


@dataclass
class Upscale(Work):
    scale: int
    mode: str  # bicubic or real
    ensemble: int

    def prepare(self, rep: Reporter) -> None:
        self.model = load_restore(self.common.model, self.scale, self.mode, self.runtime(), rep)

    def __call__(self, img, rep: Reporter):
        from ..pipelines.restore import restore_image

        steps = self.common.steps or 1
        out = restore_image(img, self.model, self.rt, steps, self.common.seed, rep.step)
        meta = metadata("upscale", self.model, self.rt, self.common, steps, scale=self.scale, mode=self.mode)
        return out, meta, {"scale": self.scale, "steps": steps}


SaveStyleOpt = Annotated[Optional[Path], typer.Option(help="Also save the learnt style model here.")]
StyleStepsOpt = Annotated[int, typer.Option(min=1, max=100_000, help="Fine-tuning steps when learning a new style.")]


@image_command
def stylize(
    inputs: InputsArg,
    style: Annotated[Path, typer.Option(help="Style image (or a style .safetensors saved with --save-style).")],
    strength: Annotated[
        float, typer.Option(min=0.0, max=1.0, callback=finite, help="0 keeps the content, 1 replaces it.")
    ] = STYLE_STRENGTH,
    save_style: SaveStyleOpt = None,
    style_steps: StyleStepsOpt = 300,
    keep_colors: Annotated[
        bool, typer.Option("--keep-colors", help="Keep the content's colours; take only the style's strokes.")
    ] = False,
    common: Common = None,
) -> None:
    """Repaint images in the colours and textures of a style image."""
    rep = Reporter(common.quiet, common.json)
    work = Stylize(common, style, style_steps, save_style, strength, keep_colors)
    work.runtime()
    jobs = plan(inputs, common, "stylize", ".stylized", rep, protected=(style,))
    work.check_save_style(jobs)
    work.prepare(rep)
    finish(run_jobs(jobs, common, "stylize", work, rep))


@dataclass
class Styled(Work):
    """Work that samples from a style's own model, learnt from a style image (or a saved one)."""

    style: Optional[Path]
    style_steps: int
    save_style: Optional[Path]
    # the learnt style as it travels to Ray workers (config, tensors, sha256), set by prepare
    learnt: Optional[tuple] = field(default=None, repr=False, kw_only=True)

    def check_save_style(self, jobs: list[Job]) -> None:
        if self.save_style is None:
            return
        if self.save_style.suffix != ".safetensors":
            fail_usage(f"--save-style {self.save_style}: a style model is saved as .safetensors")
        if self.style is None:
            fail_usage("--save-style saves the style learnt from --style: give --style too")
        try:
            check_not_an_input(self.save_style, jobs, (self.style,), "--save-style")
        except ImgdiffError as e:
            fail_usage(str(e))

    def prepare_style(self, rep: Reporter) -> None:
        """self.smodel and self.cached: from the driver (Ray), a saved style, or learnt now; the
        palette and texture statistics are in the style model's config."""
        from ..hub import from_tensors, load
        from ..train.style import style_model

        common, rt, style = self.common, self.runtime(), self.style
        if self.learnt is not None:  # a Ray worker: the driver learnt it
            name, cfg, tensors, digest, self.cached = self.learnt
            self.smodel = from_tensors(name, cfg, tensors, digest, rt.device)
            return
        t0 = time.time()
        try:
            if style.suffix == ".safetensors":
                self.smodel, self.cached = load(str(style), "generate", rt.device), True
            else:
                base = load(common.model or "generate", "generate", rt.device)
                simg = read_image(style, max_pixels=common.max_pixels)
                rep.info(f"learning the style of {style} (cached after the first run)")
                self.smodel, self.cached = style_model(
                    base,
                    simg,
                    rt.device,
                    common.seed,
                    self.style_steps,
                    self.save_style,
                    common.overwrite,
                    rep.step,
                    rep.warn,
                )
        except ImgdiffError as e:
            rep.error(str(e) if str(style) in str(e) else f"{style}: {e}")
            finish(1)
        rep.info(f"style model {'from cache' if self.cached else 'trained'} in {time.time() - t0:.1f} s")
        if common.ray:
            m = self.smodel
            state = {k: v.cpu() for k, v in m.denoiser.state_dict().items()}
            self.learnt = (m.name, m.config, state, m.sha256, self.cached)


@dataclass
class Stylize(Styled):
    strength: float
    keep_colors: bool

    def prepare(self, rep: Reporter) -> None:
        self.prepare_style(rep)

    def __call__(self, img, rep: Reporter):
        from ..pipelines.stylize import stylize_image

        common, steps = self.common, self.common.steps or 12
        out = stylize_image(
            img,
            self.smodel,
            self.rt,
            strength=self.strength,
            steps=steps,
            seed=common.seed,
            progress=rep.step,
            keep_colors=self.keep_colors,
        )
        meta = metadata(
            "stylize",
            self.smodel,
            self.rt,
            common,
            steps,
            strength=self.strength,
            style=str(self.style),
            keep_colors=self.keep_colors,
        )
        return out, meta, {"strength": self.strength, "steps": steps, "style_cached": self.cached}


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


@image_command
def generate(
    num: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many images.")] = 1,
    size: Annotated[str, typer.Option(help="N or WxH, multiples of 16; above 64 is sampled patch-wise.")] = "64",
    tileable: Annotated[bool, typer.Option(help="Make the texture seamless when tiled.")] = False,
    style: Annotated[
        Optional[Path],
        typer.Option(help="Generate in this style: a style image (learnt once, cached) or a saved style .safetensors."),
    ] = None,
    save_style: SaveStyleOpt = None,
    style_steps: StyleStepsOpt = 300,
    common: Common = None,
) -> None:
    """Generate natural textures from noise (numbered files into -o DIR, or -o FILE / -)."""
    rep = Reporter(common.quiet, common.json)
    if not common.output:
        fail_usage("generate needs -o DIR, -o FILE or -o -")
    width, height = parse_size(size, common.max_pixels)
    if common.output == "-" and num > 1:
        fail_usage("-o - takes a single image (--num 1)")
    if common.seed + num - 1 > SEED_MAX:
        fail_usage(f"--seed {common.seed} --num {num}: the seeds of the images would pass {SEED_MAX}")
    work = Generate(common, style, style_steps, save_style, width, height, tileable)
    work.runtime()
    jobs = generate_jobs(common, num)
    check_stdout(jobs, common)
    if style is not None:  # an output must not replace the style image it is generated from
        try:
            for job in jobs:
                if job.output is not None:
                    check_not_an_input(job.output, [], (style,))
        except ImgdiffError as e:
            fail_usage(str(e))
    work.check_save_style(jobs)
    work.prepare(rep)
    finish(run_jobs(jobs, common, "generate", work, rep, read=the_job))


def the_job(job: Job) -> Job:
    """generate reads no image: its process takes the job (and its seed) itself."""
    return job


@dataclass
class Generate(Styled):
    width: int
    height: int
    tileable: bool

    def prepare(self, rep: Reporter) -> None:
        if self.style is not None:
            self.prepare_style(rep)
            self.model = self.smodel
        else:
            self.model = load_model(self.common.model or "generate", "generate", self.runtime(), rep)
        m = self.model.denoiser.net.multiple
        if self.width % m or self.height % m:
            fail_usage(f"--size {self.width}x{self.height}: both sides must be multiples of {m} for {self.model.name}")

    def __call__(self, job: Job, rep: Reporter):
        from ..pipelines.generate import generate_image

        common, steps, size = self.common, self.common.steps or 24, f"{self.width}x{self.height}"
        img = generate_image(self.model, self.rt, self.width, self.height, steps, job.seed, self.tileable, rep.step)
        styled = {} if self.style is None else {"style": str(self.style)}
        meta = metadata(
            "generate", self.model, self.rt, common, steps, size=size, tileable=self.tileable, seed=job.seed, **styled
        )
        return img, meta, {"seed": job.seed, "size": size, **styled}


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
    return [
        Job(None, None, f"generate#{i + 1} (seed {common.seed + i})", t, seed=common.seed + i)
        for i, t in enumerate(targets)
    ]
