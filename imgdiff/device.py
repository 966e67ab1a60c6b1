"""Device and precision choices, and the guarded per-tile call.

auto = CUDA with fp16 autocast when present, else the CPU on all cores: bf16 autocast where it has
native bf16 dot products (AMX, or AVX512-BF16) and a one-off probe measured them faster than fp32
(costing at most ~0.03 dB since the UNet keeps its head and tail fp32), fp32 elsewhere. On CUDA a
tile that runs out of memory is retried as four half-size tiles, and a tile whose fp16 output is
not finite is recomputed in fp32, so one bad tile never costs the whole image.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass

import torch

from .defaults import DEFAULT_TILE, ENSEMBLE_SIZES, PRECISIONS
from .errors import ImgdiffError
from .models import onednn


@dataclass
class Runtime:
    device: torch.device
    dtype: torch.dtype  # autocast dtype; float32 = no autocast
    tile: int
    overlap: int
    ensemble: int = 1  # rotations/flips averaged per tile (imgdiff.ensemble)
    int8: bool = False  # the UNet's deep levels in int8 (models.onednn)

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
    if not _isa_allows("amx"):
        return False
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe()) or "amx_bf16" in cpu_flags()


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (Linux); empty where unknown."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this CPU; empty where unknown."""
    return frozenset(cpu_info().get("flags", "").split())


# What an ISA cap leaves of the native paths. ATEN_CPU_CAPABILITY below AVX-512 (a laptop-class run
# on a server, or a user's choice) rules out all of them; oneDNN's ONEDNN_MAX_CPU_ISA (its own names)
# keeps what the named ISA has, so a cap of AVX512_CORE_BF16 on an AMX Xeon runs as a Zen 4 would.
_ISA_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
_ATEN_CAPPED = ("avx2", "avx", "sse4_1", "sse4_2", "default")
_ALL_NATIVE = frozenset({"amx", "avx512_bf16", "avx512_vnni", "avx_vnni"})
_ONEDNN_KEEPS = {
    "sse41": frozenset(),
    "avx": frozenset(),
    "avx2": frozenset(),
    "avx2_vnni": frozenset({"avx_vnni"}),
    "avx2_vnni_2": frozenset({"avx_vnni"}),
    "avx512_core": frozenset(),
    "avx512_core_vnni": frozenset({"avx512_vnni", "avx_vnni"}),
    "avx512_core_bf16": frozenset({"avx512_bf16", "avx512_vnni", "avx_vnni"}),
    "avx512_core_fp16": frozenset({"avx512_bf16", "avx512_vnni", "avx_vnni"}),
    "avx10_1_512": frozenset({"avx512_bf16", "avx512_vnni", "avx_vnni"}),
}


def _isa_allows(path: str) -> bool:
    """Whether the ISA caps in the environment leave this native path (amx, avx512_bf16,
    avx512_vnni, avx_vnni) to the kernels; an unknown or AMX-level oneDNN cap leaves all."""
    if os.environ.get("ATEN_CPU_CAPABILITY", "").lower() in _ATEN_CAPPED:
        return False
    for var in _ISA_VARS[1:]:
        cap = os.environ.get(var, "").lower()
        if path not in _ONEDNN_KEEPS.get(cap, _ALL_NATIVE):
            return False
    return True


def cpu_bf16_path() -> str | None:
    """The native bf16 dot-product path of this CPU, or None where bf16 would be emulated (~15x
    slower than fp32, measured on an AVX2 EPYC): AMX tiles, else AVX512-BF16 (Zen 4, Cooper Lake;
    1.7x faster than fp32 for the denoiser on one Zen 4 core). bf16 rounds the same way on both, so
    the quality cost measured on AMX (at most ~0.03 dB, the head and tail stay fp32) holds for both."""
    if cpu_has_amx():
        return "amx"
    if "avx512_bf16" in cpu_flags() and _isa_allows("avx512_bf16"):
        return "avx512_bf16"
    return None


# bf16 must beat fp32 by this factor on the probe to be chosen: the two measured CPUs are far
# either side of 1 (Zen 4 1.7x, the AMX-less Xeon 0.5x)
BF16_MIN_SPEEDUP = 1.15
PROBE_VERSION = 2  # _probe_bf16_speedup's method; part of the cache key


def bf16_speedup() -> float:
    """fp32 time over bf16 time for the denoiser's convolution shapes on this CPU. Native bf16 is
    not always the faster: a 2-core Xeon (Sapphire Rapids class, AMX not exposed) ran the shipped
    denoiser 1.5x slower in bf16 than in fp32, a 2-core Zen 4 1.7x faster. Measured once (0.2 s)
    per CPU model, flags, torch version and ISA cap, and kept in the cache."""
    from .cache import cache_root
    from .io import write_atomic

    sig = "\n".join([cpu_info().get("model name", "?"), " ".join(sorted(cpu_flags())), torch.__version__])
    sig += f"\nprobe {PROBE_VERSION}"  # a new probe measures again: the old one could cache a reading taken under load
    sig += "".join(f"\n{v}={os.environ.get(v, '')}" for v in _ISA_VARS)
    key = hashlib.sha256(sig.encode()).hexdigest()[:16]
    path = cache_root() / "cpu-precision.json"
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    table = table if isinstance(table, dict) else {}
    known = table.get(key)
    if isinstance(known, (int, float)) and not isinstance(known, bool) and math.isfinite(known) and known > 0:
        return float(known)
    table[key] = round(_probe_bf16_speedup(), 3)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(table, sort_keys=True).encode(), overwrite=True)
    except OSError:
        pass  # a read-only cache only means probing again next time
    return table[key]


def _probe_bf16_speedup() -> float:
    """Three 3x3 convolutions shaped like the UNet's levels: fp32 time over bf16 time, the fastest of
    four interleaved runs of each, on one thread."""
    g = torch.Generator().manual_seed(0)
    layers = [
        (torch.randn(1, c, s, s, generator=g).contiguous(memory_format=torch.channels_last), torch.randn(c, c, 3, 3))
        for c, s in ((32, 256), (64, 128), (128, 64))
    ]

    def once(bf16: bool) -> float:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            t = time.perf_counter()
            for x, w in layers:
                torch.nn.functional.conv2d(x, w, padding=1)
            return time.perf_counter() - t

    # On one thread and interleaved: with both cores of an AMX Xeon busy elsewhere, the old probe
    # (two threads, three runs of one precision, then of the other) read 0.75 instead of 3.5, and the
    # cached reading turned auto to fp32 for good; one thread read 3.5-3.7 under the same load, since
    # a parallel convolution waits for its most delayed thread. The fastest run of each is its least
    # disturbed one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        once(False), once(True)  # the first runs build the kernels
        pairs = [(once(False), once(True)) for _ in range(4)]
    finally:
        torch.set_num_threads(threads)
    return min(a for a, _ in pairs) / min(b for _, b in pairs)


def cpu_auto_bf16() -> bool:
    """Whether --precision auto runs bf16 on this CPU: native bf16 dot products, measured faster."""
    return cpu_bf16_path() is not None and bf16_speedup() >= BF16_MIN_SPEEDUP


def cpu_int8_path() -> str | None:
    """The native int8 dot-product path of this CPU (AMX, AVX512-VNNI, AVX-VNNI), or None; without
    VNNI, oneDNN's int8 multiplies in 16 bits and does not beat fp32."""
    if cpu_has_amx():
        return "amx"
    return next((f for f in ("avx512_vnni", "avx_vnni") if f in cpu_flags() and _isa_allows(f)), None)


def cpu_auto_int8() -> bool:
    """Whether --precision auto runs the UNet's deep blocks in int8 on this CPU."""
    return cpu_int8_path() is not None and onednn.available()


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    if name not in PRECISIONS:
        raise ImgdiffError(f"--precision {name}: expected one of {', '.join(PRECISIONS)}")
    if name == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_auto_bf16() else torch.float32
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
    int8 = precision == "auto" and dev.type == "cpu" and cpu_auto_int8()
    return Runtime(dev, dtype, DEFAULT_TILE if tile is None else tile, overlap, ensemble, int8)


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
