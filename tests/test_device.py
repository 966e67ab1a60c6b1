"""Device choice and the per-tile fallbacks (OOM -> smaller tiles, non-finite -> fp32)."""

from __future__ import annotations

import pytest
import torch

from imgdiff.device import Runtime, default_tile, guarded, make_runtime, resolve_device, resolve_precision
from imgdiff.errors import ImgdiffError

CPU = torch.device("cpu")


def test_auto_device_and_precision():
    rt = make_runtime("auto", "auto", None, 32, 1)
    assert rt.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert rt.dtype == (torch.float16 if rt.device.type == "cuda" else torch.float32)
    assert 256 <= rt.tile <= 2048 and torch.get_num_threads() == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ImgdiffError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ImgdiffError, match="fp16 needs CUDA"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ImgdiffError):
        resolve_device("tpu")


def test_default_tile_follows_memory(monkeypatch):
    import imgdiff.device as d

    monkeypatch.setattr(d, "available_memory", lambda dev: 64 << 20)
    assert default_tile(CPU) == 256
    monkeypatch.setattr(d, "available_memory", lambda dev: 64 << 30)
    assert default_tile(CPU) == 2048


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
