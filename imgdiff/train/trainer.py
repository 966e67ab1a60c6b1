"""Runs of `imgdiff train`: data, validation through the pipelines, checkpoints, resumable state (fit.py steps).

Two files come out of a run:
- `--out`: the EMA weights in fp16 with the config and validation figures (the shippable model),
  rewritten whenever validation improves;
- `RUN_DIR/state.safetensors`: weights, EMA, the optimiser's state_dict, step, RNG states (to resume).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_tensors, read_config, read_header, save_checkpoint
from ..device import cpu_bf16_path
from ..errors import UsageError
from ..hub import sha256_file
from ..models import build_denoiser
from ..models.unet import UNetConfig
from ..tasks import crop_zoom, default_config, sigma_from_255
from .data import ImageBank, check_shares, split_images, validation_crops, zoom_levels
from .degrade import quantise
from .fit import Fitter, Recipe
from .objectives import degraded_input, objective_for


@dataclass
class DataSource:
    """One training folder; `share` is its fraction of the crops (None: in proportion to its area)."""

    folder: Path
    share: float | None = None

    @property
    def name(self) -> str:
        return self.folder.name or str(self.folder)


def parse_data(spec: str | Path) -> DataSource:
    """'photos@0.6' -> photos/ supplying 60 % of the training crops; 'photos' -> by area."""
    text = str(spec)
    folder, sep, share = text.rpartition("@")
    if not sep or Path(text).exists():
        return DataSource(Path(text))
    try:
        value = float(share)
    except ValueError:
        raise ValueError(f"--data {text!r}: expected FOLDER or FOLDER@SHARE with SHARE in (0, 1]") from None
    if not 0 < value <= 1:
        raise ValueError(f"--data {text!r}: the share must be in (0, 1]")
    return DataSource(Path(folder), value)


def resolve_select(sources: list[DataSource], select: str) -> str:
    """The folder whose held-out slice chooses checkpoints: the one named, else the last."""
    names = [src.name for src in sources]
    if select and select not in names:
        raise ValueError(f"--select {select}: not the name of a --data folder ({', '.join(names)})")
    return select or names[-1]


@dataclass
class TrainOptions:
    task: str
    data: Path | list[DataSource]  # several folders: validated on each, checkpoints chosen on `select`
    out: Path
    run_dir: Path
    minutes: float = 60.0
    max_steps: int = 0  # 0 = until the time is up
    batch: int = 16
    crop: int = 96
    lr: float = 4e-4
    ema: float = 0.999
    warmup: int = 300
    decay_fraction: float = 0.25  # the last quarter of the run anneals the LR (cosine)
    val_every: int = 500
    seed: int = 0
    device: str = "cpu"
    threads: int = 2
    bf16: bool = False
    resume: bool = False
    init: Path | None = None  # start from these weights (fine-tuning), fresh optimiser
    net: dict | None = None  # network-shape overrides, e.g. {"unshuffle": 4}
    zoom: tuple[float, float] | None = None  # crop scale range of a new run (default: the task's)
    quiet: bool = False
    command: str = ""  # how this run was launched, recorded in the checkpoint
    select: str = ""  # the data folder whose held-out slice chooses checkpoints (default: the last)
    texture_loss: float = 0.0  # weight of objectives.amplitude_loss beside L1 (a new run's; kept in its config)


def log(opts: TrainOptions, msg: str) -> None:
    if not opts.quiet:
        print(msg, file=sys.stderr, flush=True)


@torch.no_grad()
def validate(
    cfg: dict,
    model,
    val: torch.Tensor,
    distance: float | None = None,
) -> dict:
    """Fixed-seed figures on held-out crops through the product's own pipelines (as BasicSR's
    validation calls its test()): one step, no tiling, no ensemble, fp32; 'score' is higher-is-better.
    distance: a generate run's sample distance when the caller measured it (default: against val)."""
    from ..device import Runtime
    from ..hub import LoadedModel
    from ..pipelines.denoise import denoise_image
    from ..pipelines.restore import restore_image
    from ..resample import upscale_bicubic

    was_training = model.training  # the EMA copy is never trained: leave it as it came
    model.eval()
    gen = torch.Generator(device=val.device).manual_seed(1234)
    rt = Runtime(val.device, torch.float32, tile=0, overlap=0)
    product = LoadedModel(name="validation", config=cfg, denoiser=model, sha256="")
    out: dict = {}
    if cfg["task"] == "denoise":
        for s in (15, 25, 50):
            sigma = torch.full((val.shape[0],), sigma_from_255(s), device=val.device)
            noise = torch.randn(val.shape, generator=gen, device=val.device)
            noisy = quantise(val + noise * sigma[:, None, None, None])
            den = [denoise_image(as_image(n), product, rt, float(s)) for n in noisy]
            out[f"psnr_s{s}"] = mean_psnr(den, val)
        out["score"] = sum(out[f"psnr_s{s}"] for s in (15, 25, 50)) / 3
    elif cfg["task"] == "restore":
        low = degraded_input(cfg, val, gen)
        restored = [restore_image(as_image(lo), product, rt, seed=i) for i, lo in enumerate(low)]
        out["psnr"] = mean_psnr(restored, val)
        bicubic = upscale_bicubic(low, int(cfg["scale"]))
        out["psnr_input"] = mean_psnr([as_image(c) for c in bicubic], val)
        out["score"] = out["psnr"]
    else:
        losses = []
        with torch.inference_mode():
            for s in (0.05, 0.2, 0.5, 1.0, 2.0):
                sigma = torch.full((val.shape[0],), s, device=val.device)
                x = val + torch.randn(val.shape, generator=gen, device=val.device) * s
                den = torch.cat([model(x[i : i + 1], sigma[i : i + 1]) for i in range(len(val))])
                weight = float(objective_for(cfg).weight(torch.tensor(s), model.sigma_data))
                losses.append(float(((den - val) ** 2).mean()) * weight)
        out["loss"] = sum(losses) / len(losses)
        out["score"] = -out["loss"]
        if cfg.get("val_samples"):  # runs from before the key keep the loss their stored best was
            from ..io import to_u8

            if distance is None:
                distance = sample_distance(model, cfg, [to_u8(as_image(v).pixels) for v in val])
            out["texture_distance"] = distance
            out["score"] = -out["texture_distance"]
    model.train(was_training)
    return {k: round(v, 4) for k, v in out.items()}


def sample_distance(model, cfg: dict, reference: list[np.ndarray]) -> float:
    """Texture distance (the generate benchmark's) of cfg's val_samples fixed-seed samples at twice
    the training size, by the product's own sampler (fp32, untiled), to the reference crops. The
    denoising loss does not see what users see: a fine-tune on textures lowered it while its samples
    went from smears to grain (2026-12-03), so generate runs choose checkpoints on their samples."""
    from ..device import Runtime
    from ..eval.metrics import texture_distance
    from ..hub import LoadedModel
    from ..io import to_u8
    from ..pipelines.generate import generate_image

    was_training = model.training
    model.eval()
    product = LoadedModel(name="validation", config=cfg, denoiser=model, sha256="")
    rt = Runtime(next(model.parameters()).device, torch.float32, tile=0, overlap=0)
    side = 2 * int(cfg.get("size", 64))
    samples = [to_u8(generate_image(product, rt, side, side, seed=i).pixels) for i in range(int(cfg["val_samples"]))]
    model.train(was_training)
    return texture_distance(samples, reference)


def as_image(x: torch.Tensor):
    """A (3, H, W) tensor in [-1, 1] as the pipelines' ImageData."""
    from ..io import ImageData

    return ImageData(pixels=np.ascontiguousarray(((x.float().cpu() + 1) / 2).permute(1, 2, 0).numpy()))


def mean_psnr(images: list, val: torch.Tensor) -> float:
    """Mean over images of the 8-bit PSNR (the benchmark's metric) against the clean crops."""
    from ..eval.metrics import psnr
    from ..io import to_u8

    refs = [to_u8(as_image(v).pixels) for v in val]
    return float(np.mean([min(psnr(to_u8(im.pixels), ref), 100.0) for im, ref in zip(images, refs, strict=True)]))


def parse_net(spec: str) -> dict:
    """'unshuffle=4,base=48,blocks=2/2/3/4' -> {'unshuffle': 4, 'base': 48, 'blocks': [2, 2, 3, 4]}."""
    out: dict = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, val = item.partition("=")
        if not sep or key not in UNetConfig.__dataclass_fields__:
            raise ValueError(
                f"--net {item!r}: expected KEY=VALUE with KEY one of {list(UNetConfig.__dataclass_fields__)}"
            )
        try:
            out[key] = [int(v) for v in val.split("/")] if key == "mults" or "/" in val else int(val)
        except ValueError:
            raise ValueError(f"--net {item!r}: {val!r} is not an integer") from None
    return out


def parse_zoom(spec: str) -> tuple[float, float]:
    """'0.25,1' -> (0.25, 1.0): the range a crop's scale is drawn from."""
    try:
        lo, hi = (float(v) for v in spec.split(","))
    except ValueError:
        raise ValueError(f"--zoom {spec!r}: expected LO,HI, e.g. 0.25,1") from None
    if not 0 < lo <= hi <= 1:  # also false for NaN
        raise ValueError(f"--zoom {spec!r}: expected 0 < LO <= HI <= 1")
    return lo, hi


def load_matching(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> list[str]:
    """Copy every tensor whose name and shape match; returns the names left at their fresh values.

    Lets a network with a new head/tail (e.g. more pixel-unshuffle) start from a trained body.
    """
    own = model.state_dict()
    fresh = [k for k, v in own.items() if k not in tensors or tensors[k].shape != v.shape]
    model.load_state_dict({**own, **{k: tensors[k].float() for k in own if k not in fresh}})
    return fresh


def lineage(path: Path, cfg: dict) -> dict:
    """What a fine-tuned model started from, so its card can count the compute behind it."""
    tr = cfg.get("training", {})
    return {
        "file": Path(path).name,
        "sha256": sha256_file(Path(path)),
        **{k: tr[k] for k in ("steps", "cpu_hours", "gpu_minutes") if k in tr},
        **({"init": cfg["init"]} if "init" in cfg else {}),
    }


def _state_path(opts: TrainOptions) -> Path:
    return opts.run_dir / "state.safetensors"


@dataclass
class Split:
    source: DataSource
    train: list[Path]
    val: list[Path]


def split_sources(sources: list[DataSource]) -> list[Split]:
    """Each folder's images split by file-name hash into training and held-out validation."""
    splits = []
    for src in sources:
        split = Split(src, *split_images(src.folder))
        if not split.train or not split.val:
            n = len(split.train) + len(split.val)
            raise UsageError(f"{src.folder}: need images for both training and validation (found {n})")
        splits.append(split)
    if len({s.source.name for s in splits}) != len(splits):
        raise UsageError("--data: two folders share a name; their validation figures would collide")
    return splits


def describe_data(splits: list[Split], select: str) -> str:
    """The model card's data line: folders, counts, mix and the slice checkpoints were chosen on."""
    parts = [
        f"{s.source.folder} ({len(s.train)} training images; {len(s.val)} held out"
        + (f"; {s.source.share:.0%} of crops)" if s.source.share is not None else ")")
        for s in splits
    ]
    return " + ".join(parts) + (f"; checkpoints chosen on the {select} slice" if len(splits) > 1 else "")


def train(opts: TrainOptions) -> dict:
    torch.set_num_threads(opts.threads)
    dev = torch.device(opts.device)
    sources = opts.data if isinstance(opts.data, list) else [DataSource(Path(opts.data))]
    try:
        check_shares([src.share for src in sources])
        select = resolve_select(sources, opts.select)
    except ValueError as e:
        raise UsageError(str(e)) from None
    splits = split_sources(sources)

    state: dict = {}
    if opts.resume and _state_path(opts).exists():
        meta = read_header(_state_path(opts))["__metadata__"]
        cfg = read_config(_state_path(opts))
        state = {"tensors": load_tensors(_state_path(opts)), "meta": json.loads(meta["trainer"])}
    elif opts.init:
        # the network shape comes from the weights, everything task-specific from the task
        init_cfg, cfg = read_config(opts.init), default_config(opts.task)
        if init_cfg["task"] != cfg["task"]:
            raise UsageError(f"{opts.init}: a {init_cfg['task']!r} checkpoint cannot initialise {opts.task!r}")
        cfg["net"] = {**init_cfg["net"], **(opts.net or {})}
        cfg["init"] = lineage(opts.init, init_cfg)
        if "int8_min_channels" in init_cfg and cfg["net"] == init_cfg["net"]:
            # the same network fine-tuned keeps its activation ranges, so the int8 threshold measured for
            # the init carries over (the benchmark's auto-vs-fp32 rows check each shipped checkpoint)
            cfg["int8_min_channels"] = init_cfg["int8_min_channels"]
    else:
        cfg = default_config(opts.task)
        cfg["net"] = {**cfg["net"], **(opts.net or {})}
    if opts.zoom and not state:
        cfg["zoom"] = list(opts.zoom)
    if opts.texture_loss and not state:
        if cfg["task"] == "generate":
            raise UsageError("--texture-loss: generate learns a distribution; the loss is for restoration tasks")
        cfg["texture_loss"] = opts.texture_loss
    torch.manual_seed(opts.seed)  # a fresh network's initial weights
    model = build_denoiser(cfg).to(dev).to(memory_format=torch.channels_last)
    fresh: list[str] = []
    if opts.init and not state:
        fresh = load_matching(model, load_tensors(opts.init))
        if fresh:
            log(opts, f"init from {opts.init}: fresh (new or reshaped) {', '.join(fresh)}")
    recipe = Recipe(lr=opts.lr, ema=opts.ema, warmup=opts.warmup, decay_fraction=opts.decay_fraction)
    fitter = Fitter(cfg, model, recipe, opts.seed)
    used_h, gpu_min, best = 0.0, 0.0, -float("inf")
    command = opts.command or " ".join(sys.argv)
    commands = [command]  # every launch of this run, oldest first: a resumed run's card shows how it began
    if state:
        m = state["meta"]
        fitter.load_state_tensors(state["tensors"], m["step"], opts.seed)
        used_h, gpu_min, best = m["cpu_hours"], m["gpu_minutes"], m["best"]
        commands = [*m.get("commands", []), command]
        log(opts, f"resumed {opts.task} at step {fitter.step} (best {best})")
    ema = fitter.shipped

    bank = ImageBank.from_sources([(s.train, s.source.share) for s in splits], dev, min_side=opts.crop)
    zoom = crop_zoom(cfg)
    # one folder: its centre crops, as every run before several folders; several: a 3x3 grid of crops
    # per held-out image, so a slice of a few photographs still gives a steady figure
    grid = 1 if len(splits) == 1 else 3
    reference = None
    if cfg["task"] == "generate" and cfg.get("val_samples"):
        # samples are judged against crops at the scales the run learns from (real texture crops at
        # zoom 0.25 are as far from zoom-1 crops, 1.6, as a smear is) and, as FID is, against the
        # distribution it learns: crops of the selected folder's training images. Its 3 held-out
        # textures are low-contrast outliers: real training-texture crops score 1.41 against them,
        # the shipped smears 0.91 (docs/TRAINING.md); the held-out crops still give the loss
        side, val_zooms = 2 * int(cfg.get("size", 64)), zoom_levels(zoom)
        from ..io import to_u8

        chosen = next((s for s in splits if s.source.name == select), splits[0])
        # a 3x3 grid per image: 64 centre crops of the 16 textures were too few (their patch contrast
        # ran 12 % above that of 576 crops, and the distances with it)
        crops = torch.cat([validation_crops(chosen.train, side, z, grid=3) for z in val_zooms])
        reference = [to_u8(as_image(c).pixels) for c in crops]
    else:
        # runs whose recipe zooms out are judged on zoomed-out held-out crops too (older runs keep the
        # validation set their stored best score was measured on)
        side, val_zooms = 256, ((1.0, 0.5) if tuple(cfg.get("zoom", (1.0, 1.0))) != (1.0, 1.0) else (1.0,))
    vals = {
        s.source.name: torch.cat([validation_crops(s.val, side, z, grid) for z in val_zooms]).to(dev) for s in splits
    }

    def validate_all() -> dict:
        # a generate run's samples and their reference do not depend on the held-out set: measured once
        distance = None if reference is None else sample_distance(ema, cfg, reference)
        if len(vals) == 1:
            return validate(cfg, ema, next(iter(vals.values())), distance)
        figures: dict = {name: validate(cfg, ema, v, distance) for name, v in vals.items()}
        return {"score": figures[select]["score"], "select": select, **figures}

    if cfg["task"] == "generate":
        opts.crop = int(cfg.get("size", 64))

    opts.run_dir.mkdir(parents=True, exist_ok=True)
    log_path = opts.run_dir / "log.csv"
    new_log = not log_path.exists()
    logf = open(log_path, "a", newline="")
    writer = csv.writer(logf)
    if new_log:
        writer.writerow(["step", "minutes", "lr", "loss", "val"])

    t0 = time.time()
    last_val = t0
    running = 0.0
    if opts.bf16 and dev.type == "cpu" and not cpu_bf16_path():
        log(opts, "warning: this CPU has neither AMX nor AVX512-BF16; bf16 is emulated, ~15x slower (drop --bf16)")
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=opts.bf16)

    def save_state() -> None:
        elapsed_h = (time.time() - t0) / 3600
        meta = {
            "step": fitter.step,
            "cpu_hours": used_h + (elapsed_h * opts.threads if dev.type == "cpu" else 0),
            "gpu_minutes": gpu_min + (elapsed_h * 60 if dev.type == "cuda" else 0),
            "best": best,
            "commands": commands,
        }
        save_checkpoint(_state_path(opts), fitter.state_tensors(), cfg, extra={"trainer": json.dumps(meta)})

    def save_best(figures: dict) -> None:
        elapsed_h = (time.time() - t0) / 3600
        training = {
            "command": command,
            **({"earlier_commands": commands[:-1]} if len(commands) > 1 else {}),
            "data": describe_data(splits, select),
            "steps": fitter.step,
            "batch": opts.batch,
            "crop": opts.crop,
            "cpu_hours": round(used_h + (elapsed_h * opts.threads if dev.type == "cpu" else 0), 3),
            "gpu_minutes": round(gpu_min + (elapsed_h * 60 if dev.type == "cuda" else 0), 2),
        }
        out_cfg = {**cfg, "training": training, "validation": figures}
        save_checkpoint(opts.out, {k: v.detach().half().cpu() for k, v in ema.state_dict().items()}, out_cfg)

    budget_s = opts.minutes * 60
    if opts.init and not state:  # where the fine-tune starts, on the same held-out crops
        figures = validate_all()
        writer.writerow([0, 0.0, "init", "", json.dumps(figures)])
        logf.flush()
        log(opts, f"{opts.task} init {opts.init} val {figures}")
        if not fresh:  # the bar a checkpoint must clear: a fine-tune whose --out is its --init must not
            best = figures["score"]  # replace it with the dip that follows a warm restart
    model.train()
    start_step = fitter.step

    def progress(taken: int) -> float:
        return (time.time() - t0) / budget_s if opts.max_steps == 0 else taken / opts.max_steps

    def sample(gen: torch.Generator) -> torch.Tensor:
        return bank.sample(opts.batch, opts.crop, gen, zoom).contiguous(memory_format=torch.channels_last)

    def after_step(step: int, loss: torch.Tensor, lr: float) -> None:
        nonlocal running, last_val, best
        if step % 25 == 0 or step == start_step + 1:  # a host sync each step would stall the GPU
            running = float(loss) if step == start_step + 1 else 0.8 * running + 0.2 * float(loss)
        if step % opts.val_every == 0 or time.time() - last_val > 600:
            figures = validate_all()
            writer.writerow(
                [step, round((time.time() - t0) / 60, 2), f"{lr:.2e}", f"{running:.5f}", json.dumps(figures)]
            )
            logf.flush()
            log(opts, f"{opts.task} step {step} loss {running:.4f} lr {lr:.1e} val {figures}")
            if figures["score"] > best:
                best = figures["score"]
                save_best(figures)
            save_state()
            last_val = time.time()  # ten minutes of training between validations, however long they take

    fitter.fit(sample, progress, after_step, autocast)
    step = fitter.step
    figures = validate_all()
    writer.writerow([step, round((time.time() - t0) / 60, 2), "end", f"{running:.5f}", json.dumps(figures)])
    logf.close()
    if figures["score"] > best or not opts.out.exists():
        if figures["score"] <= best:
            beaten = f"val {best} (the init's or an earlier best)"
            log(opts, f"warning: no step beat {beaten}; {opts.out} holds the last step's weights")
        best = max(best, figures["score"])
        save_best(figures)
    save_state()
    log(opts, f"{opts.task} done: step {step}, val {figures}, best {best}")
    return figures
