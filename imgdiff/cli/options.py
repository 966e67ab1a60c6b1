"""What every command shares: one-line usage errors, the common image options, runtime and model
choice, and the metadata written into outputs."""

import functools
import inspect
import json
import math
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Optional

import typer
from typer import _click as click  # Typer vendors its own click: its exceptions are these
from typer.core import TyperGroup

from .. import __version__
from ..batch import BatchOptions
from ..defaults import DEFAULT_TILE, Precision
from ..errors import ImgdiffError, UnknownModel, UsageError
from ..io import DEFAULT_MAX_PIXELS
from ..report import Reporter, print_error


class OneLineErrors(TyperGroup):
    """Usage errors as one `imgdiff: error:` line on stderr and exit 2, like the errors the
    commands report themselves (Typer's default is a boxed panel of five lines)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            print(e.format_message(), file=sys.stderr)
            sys.exit(2)
        except UsageError as e:
            print_error(str(e))
            sys.exit(2)
        except click.ClickException as e:
            where = f" (see {e.ctx.command_path} --help)" if getattr(e, "ctx", None) else ""
            msg = e.format_message().replace("Value error, ", "")  # Typer's prefix on a refused choice
            print_error(f"{msg}{where}")
            sys.exit(e.exit_code)
        except typer.Abort:
            print("imgdiff: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so temp files are cleaned up like on Ctrl-C."""


@dataclass
class Common(BatchOptions):
    """The options every image command takes (added to its signature by `image_command`)."""

    steps: Optional[int]
    seed: int
    device: str
    precision: str
    tile: Optional[int]
    tile_overlap: int
    model: Optional[str]
    quiet: bool
    threads: Optional[int]


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
            Precision,
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
    (
        "ray",
        Annotated[
            Optional[str],
            _opt(
                "--ray",
                help="Run on a Ray cluster: local (start one here), auto (the running one) or its address "
                "(needs imgdiff[ray]; inputs and outputs on storage every worker sees).",
            ),
        ],
        None,
    ),
    (
        "workers",
        Annotated[
            int,
            _opt("--workers", min=0, max=100_000, help="Ray workers (0 = one per GPU, else one per --threads cores)."),
        ],
        0,
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


def fail_usage(msg: str) -> None:
    """Library code raises UsageError itself; OneLineErrors prints it as one line, exit 2."""
    raise UsageError(msg)


def finish(code: int) -> None:
    raise typer.Exit(code)


def setup_runtime(common: Common, ensemble: int = 1):
    from ..device import make_runtime

    try:
        return make_runtime(common.device, common.precision, common.tile, common.tile_overlap, common.threads, ensemble)
    except ImgdiffError as e:
        fail_usage(str(e))


def load_model(spec: str, task: str, rt, rep: Reporter):
    """A name that is neither shipped nor a file is a usage error (2); a file that will not load, 1."""
    from ..hub import load

    try:
        return load(spec, task, rt.device)
    except UnknownModel as e:
        fail_usage(f"--model {e}")
    except ImgdiffError as e:
        rep.error(str(e))
        raise typer.Exit(1) from None


def load_restore(spec: Optional[str], scale: int, degradation: str, rt, rep: Reporter):
    """A conditional restore checkpoint, checked to be for this scale and kind of input."""
    from ..hub import check_restore_model
    from ..tasks import restore_model_name

    model = load_model(spec or restore_model_name(scale, degradation), "restore", rt, rep)
    try:
        check_restore_model(model, scale, degradation)
    except UsageError as e:
        fail_usage(f"--model {e}")
    return model


def metadata(task: str, model, rt, common: Common, steps: int, **params) -> dict:
    """What a PNG's `imgdiff` chunk records: enough to reproduce the pixels (precision changes the last bits)."""
    from ..device import cpu_bf16_path, precision_name
    from ..models.onednn import int8_min_channels

    precision = precision_name(rt.dtype)
    cpu_bf16 = rt.device.type == "cpu" and precision == "bfloat16"
    record = {
        "task": task,
        "model": model.name,
        "model_sha256": model.sha256,
        "steps": steps,
        "seed": common.seed,
        "device": rt.device.type,
        "precision": precision,
        **({"bf16_path": cpu_bf16_path() or "emulated"} if cpu_bf16 else {}),
        **({"int8_from_channels": int8_min_channels(model.config)} if rt.int8 else {}),
        "ensemble": rt.ensemble,
        "tile": rt.tile,
        "tile_overlap": rt.overlap,
        "imgdiff": __version__,
        **params,
    }
    return {"Software": f"imgdiff {__version__}", "imgdiff": json.dumps(record, sort_keys=True)}


def install_signal_handlers() -> None:
    def on_term(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, on_term)


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
