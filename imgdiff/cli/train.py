"""`imgdiff train` and `imgdiff eval`: the project's own training loop and evaluation, from the CLI."""

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..defaults import DEFAULT_TILE, DENOISE_ENSEMBLE, EvalTask, TrainTask
from ..errors import ImgdiffError
from ..io import DEFAULT_MAX_PIXELS
from ..report import Reporter
from .options import SEED_MAX, Common, check_threads, fail_usage, finite, load_model, load_restore, setup_runtime


def train(
    task: Annotated[TrainTask, typer.Option(help="What the checkpoint will do.")],
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
    zoom: Annotated[
        str,
        typer.Option(
            help="Crop scale range 'LO,HI' (0 < LO <= HI <= 1): a crop is a region 1/zoom times larger, "
            "area-downscaled (default: the task's; ignored with --resume)."
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
    warmup: Annotated[int, typer.Option(min=1, help="Steps of linear learning-rate warm-up.")] = 300,
    ema: Annotated[float, typer.Option(min=0.0, max=1.0, callback=finite, help="EMA decay of the shipped weights.")] = (
        0.999
    ),
    seed: Annotated[int, typer.Option(min=0, max=SEED_MAX)] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    threads: Annotated[Optional[int], typer.Option(min=1, callback=check_threads, help="CPU threads.")] = None,
    bf16: Annotated[
        bool, typer.Option(help="bf16 autocast (CUDA, or a CPU with AMX/AVX512-BF16: faster steps).")
    ] = False,
    select: Annotated[
        str, typer.Option(help="The --data folder whose held-out slice chooses checkpoints (default: the last).")
    ] = "",
    texture_loss: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=100.0,
            callback=finite,
            help="Weight of a Fourier-amplitude loss beside L1: keeps fine texture the pixel loss averages "
            "away (restoration tasks; ignored with --resume, whose state fixes it).",
        ),
    ] = 0.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train (or resume training) a checkpoint on folders of clean images."""
    from ..device import resolve_device
    from ..train.data import check_shares
    from ..train.trainer import TrainOptions, parse_data, parse_net, parse_zoom, resolve_select
    from ..train.trainer import train as run_training

    try:
        resolve_device(device)
        net_overrides = parse_net(net)
        zoom_range = parse_zoom(zoom) if zoom else None
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
        warmup=warmup,
        ema=ema,
        seed=seed,
        device=device,
        threads=threads or (os.cpu_count() or 1),
        bf16=bf16,
        resume=resume,
        init=init,
        net=net_overrides,
        zoom=zoom_range,
        texture_loss=texture_loss,
        quiet=quiet,
        command=" ".join(["imgdiff", *sys.argv[1:]]),
        select=select,
    )
    figures = run_training(opts)
    print(json.dumps({"task": task, "out": str(out), "validation": figures}))


def dead_leaves(
    out: Annotated[Path, typer.Argument(help="Folder to write deadleaves-NNNN.png into (created).")],
    count: Annotated[int, typer.Option(min=1, max=100_000)] = 240,
    size: Annotated[int, typer.Option(min=32, max=4096, help="Side of each square image.")] = 512,
    seed: Annotated[int, typer.Option(min=0, max=SEED_MAX)] = 0,
    palette: Annotated[
        Optional[Path],
        typer.Option(help="Draw disk colours from this folder's training images (its held-out slice is not read)."),
    ] = None,
) -> None:
    """Synthetic dead-leaves training images (occluding disks, radii ~ r^-3), deterministic for a seed."""
    import numpy as np

    from ..train.data import split_images
    from ..train.synthetic import photo_palette, write_dead_leaves

    if out.exists() and not out.is_dir():
        fail_usage(f"{out}: a file is in the way (nothing was written)")
    if out.exists() and any(out.iterdir()):
        fail_usage(f"{out}: exists and is not empty (nothing was written)")
    colours = None
    if palette is not None:
        if not palette.is_dir():
            fail_usage(f"{palette}: not a folder")
        training, _ = split_images(palette)
        if not training:
            fail_usage(f"{palette}: no training images to draw colours from")
        colours = photo_palette(training, np.random.default_rng(seed))
    paths = write_dead_leaves(out, count, size, seed, colours)
    print(json.dumps({"out": str(out), "images": len(paths), "size": size, "seed": seed}))


def eval_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder of clean reference images.")],
    task: Annotated[EvalTask, typer.Option(help="Which shipped model to measure.")] = "denoise",
    sigma: Annotated[
        float, typer.Option(min=0.0, max=255.0, callback=finite, help="Noise level for denoise (0..255 scale).")
    ] = 25.0,
    steps: Annotated[int, typer.Option(min=1, max=1000, help="Sampling steps.")] = 1,
    limit: Annotated[int, typer.Option(min=0, help="Use only the first N images (0 = all).")] = 0,
    seed: Annotated[int, typer.Option(min=0, max=SEED_MAX, help="Seed of the synthetic noise and the sampler.")] = 0,
    model: Annotated[Optional[str], typer.Option(help="Checkpoint (default: the shipped one for the task).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    tile: Annotated[Optional[int], typer.Option(min=0, max=65536, help=f"Tile size (default {DEFAULT_TILE}).")] = None,
    ensemble: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            max=8,
            help=f"Rotations/flips averaged (default: the command's own: {DENOISE_ENSEMBLE} to denoise, 1 to upscale).",
        ),
    ] = None,
    grid: Annotated[Optional[Path], typer.Option(help="Write an input | output | reference picture here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """PSNR/SSIM of imgdiff against baselines on clean images degraded with a fixed seed."""
    from ..eval.evaluate import evaluate_denoise, evaluate_upscale
    from ..train.data import list_images

    if not folder.is_dir():
        fail_usage(f"{folder}: not a folder")
    if not list_images(folder):
        fail_usage(f"{folder}: no images to evaluate on")
    common = Common(
        output=None,
        suffix=None,
        overwrite=False,
        skip_existing=False,
        recursive=False,
        json=json_out,
        max_pixels=DEFAULT_MAX_PIXELS,
        ray=None,
        workers=0,
        steps=steps,
        seed=seed,
        device=device,
        precision="auto",
        tile=tile,
        tile_overlap=32,
        model=model,
        quiet=False,
        threads=None,
    )
    ensemble = ensemble or (DENOISE_ENSEMBLE if task == "denoise" else 1)  # what `imgdiff denoise/upscale` runs
    rt = setup_runtime(common, ensemble)
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
        record = {"task": task, "folder": str(folder), "sigma": sigma, "steps": steps, "ensemble": ensemble}
        print(json.dumps({**record, "results": res}))
        return
    print(f"{title}, ensemble {ensemble}")
    print(f"{'method':<10} {'PSNR':>8} {'SSIM':>8} {'s/MP':>8} {'images':>7}")
    for name, r in res.items():
        print(f"{name:<10} {r['psnr']:>8.2f} {r['ssim']:>8.4f} {r['s_per_mp']:>8.2f} {r['images']:>7}")
