"""Device choice and the per-tile fallbacks (OOM -> smaller tiles, non-finite -> fp32)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from imgdiff.device import Runtime, cpu_bf16_path, guarded, make_runtime, resolve_device, resolve_precision
from imgdiff.errors import ImgdiffError

CPU = torch.device("cpu")


def test_auto_device_and_precision():
    rt = make_runtime("auto", "auto", None, 32, 1)
    assert rt.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    cpu_dtype = torch.bfloat16 if cpu_bf16_path() else torch.float32
    assert rt.dtype == (torch.float16 if rt.device.type == "cuda" else cpu_dtype)
    assert rt.tile == 1024 and torch.get_num_threads() == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ImgdiffError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ImgdiffError, match="fp16 needs CUDA"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ImgdiffError):
        resolve_device("tpu")


@pytest.mark.parametrize(
    "flags,amx,env,expected",
    [
        ({"avx2", "fma"}, False, {}, (None, torch.float32)),  # AMD EPYC without AVX-512, laptops
        ({"avx2", "avx512f", "avx512_vnni"}, False, {}, (None, torch.float32)),  # Skylake/Ice Lake servers
        ({"avx2", "avx512f", "avx512_bf16"}, False, {}, ("avx512_bf16", torch.bfloat16)),  # Zen 4, Cooper Lake
        ({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, True, {}, ("amx", torch.bfloat16)),
        ({"avx2", "avx512f", "avx512_bf16"}, False, {"ATEN_CPU_CAPABILITY": "avx2"}, (None, torch.float32)),
        ({"avx512_bf16", "amx_bf16"}, True, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, (None, torch.float32)),
    ],
)
def test_auto_precision_follows_the_instruction_set(monkeypatch, flags, amx, env, expected):
    import imgdiff.device as d

    monkeypatch.setattr(d, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert (d.cpu_bf16_path(), resolve_precision("auto", CPU)) == expected
    assert resolve_precision("fp32", CPU) == torch.float32  # an explicit choice is kept on every CPU


def test_default_tile_does_not_depend_on_free_memory(monkeypatch):
    # the tile changes the pixels (seams are cross-faded), so the default must be the same on every machine
    import builtins

    from imgdiff.defaults import DEFAULT_TILE

    real_open = builtins.open

    def low_memory_open(path, *a, **kw):
        if str(path) == "/proc/meminfo":
            import io

            return io.StringIO("MemTotal: 2097152 kB\nMemAvailable: 65536 kB\n")
        return real_open(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", low_memory_open)
    assert make_runtime("cpu").tile == DEFAULT_TILE
    assert make_runtime("cpu", tile=300).tile == 300


def test_out_of_memory_tile_is_retried_at_half_size():
    seen = []

    def fn(x, cond):
        seen.append(x.shape[-1])
        if x.shape[-1] > 64:
            raise torch.cuda.OutOfMemoryError("simulated")
        return x * 3

    x = torch.rand(1, 3, 128, 128)
    out = guarded(fn, Runtime(CPU, torch.float32, 128, 16), multiple=16)(x, None)
    assert torch.allclose(out, x * 3, atol=1e-6)
    assert seen[0] == 128 and max(seen[1:]) <= 64


def test_non_finite_low_precision_tile_is_redone_in_fp32():
    def fn(x, cond):
        if torch.is_autocast_enabled("cpu"):
            return torch.full_like(x, float("nan"))
        return x + 1

    x = torch.rand(1, 3, 32, 32)
    out = guarded(fn, Runtime(CPU, torch.bfloat16, 0, 0), multiple=16)(x, None)
    assert torch.isfinite(out).all() and torch.allclose(out, x + 1)


def test_bf16_autocast_keeps_the_full_resolution_stream_fp32():
    """Head and tail run in fp32 under autocast, so bf16 only touches the body's convolutions."""
    from imgdiff.models.unet import UNet, UNetConfig

    torch.manual_seed(0)
    net = UNet(UNetConfig(base=8, mults=[1, 2])).eval()
    for p in net.parameters():  # a trained-looking net: zero-initialised layers would hide the rounding
        torch.nn.init.normal_(p, std=0.05)
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        ref = net(x, torch.zeros(1))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = net(x, torch.zeros(1))
    assert low.dtype == torch.float32
    rel = ((low - ref).norm() / ref.norm()).item()
    assert 0 < rel < 3.5e-3  # bf16 in head and tail too: 5.5e-3 on this net


@pytest.mark.parametrize(
    ("flags", "precision", "path"),
    [
        ({"avx512_bf16"}, "bf16", "avx512_bf16"),
        (set(), "bf16", "emulated"),  # asked for on a CPU that would emulate it: recorded as such
        ({"avx512_bf16"}, "fp32", None),
    ],
)
def test_metadata_records_the_bf16_path_taken(monkeypatch, tmp_path, noisy_png, flags, precision, path):
    import json

    import imgdiff.device as d
    from imgdiff.io import png_metadata
    from tests.conftest import cli, tiny_checkpoint

    monkeypatch.setattr(d, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    model = tiny_checkpoint(tmp_path / "tiny.safetensors")
    out = tmp_path / "o.png"
    args = ["denoise", str(noisy_png), "--model", str(model), "--precision", precision, "--sigma", "10"]
    r = cli(CliRunner(), *args, "-o", str(out))
    assert r.exit_code == 0, r.stderr
    meta = json.loads(png_metadata(out)["imgdiff"])
    assert meta["precision"] == ("bfloat16" if precision == "bf16" else "float32")
    assert meta.get("bf16_path") == path
