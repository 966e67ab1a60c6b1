"""Device and precision choices, and the guarded per-tile call.

auto = CUDA with fp16 autocast when present, else the CPU on all cores: bf16 autocast where it has
native bf16 dot products (AMX, or AVX512-BF16: bf16 convolutions 1.7-4x faster than fp32 there,
costing at most ~0.03 dB since the UNet keeps its head and tail fp32), fp32 elsewhere. On CUDA a
tile that runs out of memory is retried as four half-size tiles, and a tile whose fp16 output is
not finite is recomputed in fp32, so one bad tile never costs the whole image.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import torch

from .defaults import DEFAULT_TILE, ENSEMBLE_SIZES, PRECISIONS
from .errors import ImgdiffError


@dataclass
class Runtime:
    device: torch.device
    dtype: torch.dtype  # autocast dtype; float32 = no autocast
    tile: int
    overlap: int
    ensemble: int = 1  # rotations/flips averaged per tile (imgdiff.ensemble)

    def autocast(self, enabled: bool = True):
        if self.dtype == torch.float32 or not enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)


def precision_name(dtype: torch.dtype) -> str:
    """How metadata and reports name a precision: float32, float16, bfloat16."""
    return str(dtype).removeprefix("torch.")


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ImgdiffError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ImgdiffError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise ImgdiffError(f"--device {name}: expected auto, cpu, cuda or cuda:N")


def cpu_has_amx() -> bool:
    """AMX tiles (Xeon Sapphire Rapids and later): bf16 convolutions 2-4x faster than fp32."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe()) or "amx_bf16" in cpu_flags()


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this CPU (Linux /proc/cpuinfo); empty where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


# an ISA cap below AVX-512 (a laptop-class run on a server, or a user's choice) rules out native bf16
_CAPPED_ISA = ("avx2", "avx", "sse4_1", "sse4_2", "default")


def cpu_bf16_path() -> str | None:
    """The native bf16 dot-product path of this CPU, or None where bf16 would be emulated (~15x
    slower than fp32, measured on an AVX2 EPYC): AMX tiles, else AVX512-BF16 (Zen 4, Cooper Lake;
    1.7x faster than fp32 for the denoiser on one Zen 4 core). bf16 rounds the same way on both, so
    the quality cost measured on AMX (at most ~0.03 dB, the head and tail stay fp32) holds for both."""
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        if os.environ.get(var, "").lower() in _CAPPED_ISA:
            return None
    if cpu_has_amx():
        return "amx"
    if "avx512_bf16" in cpu_flags():
        return "avx512_bf16"
    return None


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    if name not in PRECISIONS:
        raise ImgdiffError(f"--precision {name}: expected one of {', '.join(PRECISIONS)}")
    if name == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_bf16_path() else torch.float32
    if name == "fp16" and device.type == "cpu":
        raise ImgdiffError("--precision fp16 needs CUDA; on the CPU use fp32 or bf16")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def set_threads(threads: int | None) -> None:
    if not threads:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, int(threads or 1)))


def make_runtime(
    device: str = "auto",
    precision: str = "auto",
    tile: int | None = None,
    overlap: int = 32,
    threads: int | None = None,
    ensemble: int = 1,
) -> Runtime:
    """The one place CLI and Python API turn user choices into a Runtime (ImgdiffError if impossible)."""
    if ensemble not in ENSEMBLE_SIZES:
        raise ImgdiffError(f"--ensemble {ensemble}: expected {ENSEMBLE_SIZES[0]}..{ENSEMBLE_SIZES[-1]}")
    set_threads(threads)
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    return Runtime(dev, dtype, DEFAULT_TILE if tile is None else tile, overlap, ensemble)


def guarded(fn, rt: Runtime, multiple: int):
    """Wrap a tile function with the OOM and non-finite fallbacks."""
    from .tiling import run_tiled

    def call(x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        try:
            with rt.autocast():
                out = fn(x, cond)
        except torch.cuda.OutOfMemoryError:
            side = max(x.shape[-2:])
            if side <= multiple * 2:
                raise ImgdiffError("out of GPU memory even for the smallest tile; use --device cpu") from None
            torch.cuda.empty_cache()
            return run_tiled(call, x, cond, tile=side // 2, overlap=min(rt.overlap, side // 8), multiple=multiple)
        if rt.dtype != torch.float32 and not torch.isfinite(out).all():
            out = fn(x, cond)  # fp32 redo
        return out.float()

    return call
