"""Device choice and the per-tile fallbacks (OOM -> smaller tiles, non-finite -> fp32)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from imgdiff.device import Runtime, cpu_auto_bf16, guarded, make_runtime, resolve_device, resolve_precision
from imgdiff.errors import ImgdiffError

CPU = torch.device("cpu")


def test_auto_device_and_precision():
    rt = make_runtime("auto", "auto", None, 32, 1)
    assert rt.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    cpu_dtype = torch.bfloat16 if cpu_auto_bf16() else torch.float32
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
        # an AMX Xeon capped to a Zen 4's ISA takes the Zen 4's path; capped below bf16, fp32
        (
            {"avx512_bf16", "amx_bf16"},
            True,
            {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
            ("avx512_bf16", torch.bfloat16),
        ),
        ({"avx512_bf16", "amx_bf16"}, True, {"DNNL_MAX_CPU_ISA": "avx512_core_vnni"}, (None, torch.float32)),
        ({"avx512_bf16", "amx_bf16"}, True, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, ("amx", torch.bfloat16)),
    ],
)
def test_auto_precision_follows_the_instruction_set(monkeypatch, flags, amx, env, expected):
    import imgdiff.device as d

    monkeypatch.setattr(d, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(d, "_probe_bf16_speedup", lambda: 1.7)  # as on a Zen 4
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert (d.cpu_bf16_path(), resolve_precision("auto", CPU)) == expected
    assert resolve_precision("fp32", CPU) == torch.float32  # an explicit choice is kept on every CPU


def test_auto_precision_keeps_fp32_where_native_bf16_measures_slower(monkeypatch):
    import imgdiff.device as d

    monkeypatch.setattr(d, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_fp16"}))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(var, raising=False)
    for measured, expected in ((0.55, torch.float32), (1.05, torch.float32), (1.6, torch.bfloat16)):
        monkeypatch.setattr(d, "bf16_speedup", lambda m=measured: m)
        assert d.cpu_bf16_path() == "avx512_bf16"
        assert resolve_precision("auto", CPU) == expected, measured
        assert resolve_precision("bf16", CPU) == torch.bfloat16  # an explicit choice is not second-guessed


def test_bf16_probe_runs_once_per_cpu_and_isa_cap(monkeypatch, tmp_path):
    import imgdiff.device as d

    monkeypatch.setenv("IMGDIFF_CACHE", str(tmp_path))
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(var, raising=False)
    calls = []
    monkeypatch.setattr(d, "_probe_bf16_speedup", lambda: calls.append(1) or 0.6 + 0.5 * len(calls))
    assert d.bf16_speedup() == d.bf16_speedup() == 1.1 and len(calls) == 1
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # another ISA cap is another measurement
    assert d.bf16_speedup() == 1.6 and len(calls) == 2
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert d.bf16_speedup() == 1.1 and len(calls) == 2
    for junk in (b"{not json", b"[1, 2]", b'{"x": 1}', b"\xff\xfe"):
        (tmp_path / "cpu-precision.json").write_bytes(junk)
        assert d.bf16_speedup() > 0  # a damaged cache is measured again, never an error
    key = next(iter(json.loads((tmp_path / "cpu-precision.json").read_text())))
    (tmp_path / "cpu-precision.json").write_text(json.dumps({key: float("nan")}))
    n = len(calls)
    assert d.bf16_speedup() > 0 and len(calls) == n + 1


def test_bf16_probe_measures_and_survives_an_unwritable_cache(monkeypatch, tmp_path):
    import imgdiff.device as d

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("IMGDIFF_CACHE", str(blocker))
    threads = torch.get_num_threads()
    ratio = d.bf16_speedup()  # the real probe, on this CPU
    assert math.isfinite(ratio) and 0.01 < ratio < 100
    assert torch.get_num_threads() == threads  # it measures on one thread and gives the others back


@pytest.mark.parametrize(
    "flags,amx,env,precision,int8",
    [
        ({"avx2", "avx512f", "avx512_vnni"}, False, {}, "auto", True),  # Ice Lake, Zen 4, Sapphire Rapids
        ({"avx2", "avx_vnni"}, False, {}, "auto", True),  # Alder Lake and later laptops
        ({"avx2", "fma"}, False, {}, "auto", False),  # no VNNI: oneDNN's int8 would not beat fp32
        ({"avx2", "avx512f", "avx512_vnni"}, False, {}, "fp32", False),  # fp32 asked for: the exact path
        ({"avx2", "avx512f", "avx512_vnni"}, False, {}, "bf16", False),
        ({"avx2", "avx512f", "avx512_vnni"}, False, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "auto", False),
        ({"amx_bf16", "amx_int8"}, True, {}, "auto", True),
        ({"avx512_vnni", "amx_int8"}, True, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "auto", True),
        ({"avx512_vnni", "amx_int8"}, True, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "auto", False),  # no VNNI left
    ],
)
def test_int8_deep_levels_only_where_vnni_and_auto(monkeypatch, flags, amx, env, precision, int8):
    import imgdiff.device as d
    from imgdiff.models import onednn

    monkeypatch.setattr(d, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(d, "bf16_speedup", lambda: 1.7)
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rt = make_runtime("cpu", precision, None, 32, 1)
    assert rt.int8 == (int8 and onednn.available())
    if env.get("ONEDNN_MAX_CPU_ISA") == "AVX512_CORE_BF16":
        assert d.cpu_int8_path() == "avx512_vnni"  # the metadata names the kernels the cap leaves


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
    assert "int8_from_channels" not in meta  # only auto takes the int8 path


def test_metadata_records_the_int8_levels(monkeypatch, tmp_path, noisy_png):
    import json

    import imgdiff.device as d
    from imgdiff.io import png_metadata
    from imgdiff.models import onednn
    from tests.conftest import cli, tiny_checkpoint

    monkeypatch.setattr(d, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_vnni"}))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    model = tiny_checkpoint(tmp_path / "tiny.safetensors")
    out = tmp_path / "o.png"
    r = cli(CliRunner(), "denoise", str(noisy_png), "--model", str(model), "--sigma", "10", "-o", str(out))
    assert r.exit_code == 0, r.stderr
    meta = json.loads(png_metadata(out)["imgdiff"])
    assert meta["precision"] == "float32"
    assert meta.get("int8_from_channels") == (onednn.INT8_MIN_CHANNELS if onednn.available() else None)
