"""The UNet's inference fast path (FiLM folded into conv1, in-place accumulation) against the
training path it replaces."""

from __future__ import annotations

import pytest
import torch

from imgdiff.models import onednn
from imgdiff.models.unet import ResBlock, UNet, UNetConfig


def _net(cond_channels: int = 0) -> UNet:
    torch.manual_seed(0)
    net = UNet(UNetConfig(base=8, mults=[1, 2, 4], blocks=2, cond_channels=cond_channels)).eval()
    for p in net.parameters():  # zero-initialised FiLM and conv2 would make every path agree trivially
        torch.nn.init.normal_(p, std=0.1)
    return net


def test_inference_path_matches_training_path():
    net = _net(cond_channels=3)
    x, cond = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    c_noise = torch.tensor([-0.7, 0.4])
    with torch.enable_grad():
        ref = net(x, c_noise, cond)  # batch of two noise levels: the unfolded path
    before = x.clone()
    with torch.inference_mode():
        fast = torch.cat([net(x[i : i + 1], c_noise[i : i + 1], cond[i : i + 1]) for i in range(2)])
    assert torch.equal(x, before)  # in-place accumulation never touches the caller's tensor
    assert torch.allclose(fast, ref.detach(), atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(not onednn.available(), reason="this torch build has no oneDNN fused kernels")
@pytest.mark.parametrize("circular", [False, True])
def test_fused_kernels_are_the_same_function(monkeypatch, circular):
    """conv-SiLU and conv-add fused by oneDNN give the unfused block's output, zero or circular padding."""
    net = _net()
    net.set_circular(circular)
    x = torch.rand(1, 3, 32, 48).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        fused = net(x, torch.tensor([0.3]))
        monkeypatch.setattr(onednn, "fusable", lambda x: False)
        plain = net(x, torch.tensor([0.3]))
    assert ((fused - plain).abs().max() / plain.abs().max()).item() < 1e-5  # summation order only
    calls = []
    monkeypatch.setattr(onednn, "fusable", lambda x: calls.append(1) or True)
    with torch.inference_mode():
        net(x, torch.tensor([0.3]))
    assert len(calls) == 3 * 2 + 2 * 2  # every block of the one-level path asked, none skipped


@pytest.mark.parametrize("fused", [True, False])
def test_activation_quantiser_is_round_to_nearest_u8(monkeypatch, recwarn, fused):
    """The one-pass kernel and the plain expression agree (but for exact ties), keep channels-last,
    span 0..255 over the tensor's range and print no deprecation warning on stderr."""
    if not fused:
        monkeypatch.delattr(torch, "quantize_per_tensor")
    torch.manual_seed(0)
    x = (torch.randn(1, 16, 24, 40) * 3 + 1).contiguous(memory_format=torch.channels_last)
    q, scale, zp = onednn._quantise(x)
    plain = (x / scale).round() + zp
    assert q.dtype == torch.uint8 and q.is_contiguous(memory_format=torch.channels_last)
    assert (q.float() - plain).abs().max().item() <= 1 and (q.float() != plain).float().mean().item() < 1e-3
    assert q.min().item() == 0 and q.max().item() == 255
    assert (q.float() - zp).mul(scale).sub(x).abs().max().item() <= scale * 0.5 + 1e-6  # round to nearest
    assert not [w for w in recwarn if "quantize" in str(w.message)]


@pytest.mark.skipif(not onednn.available(), reason="this torch build has no oneDNN int8 kernels")
@pytest.mark.parametrize("circular", [False, True])
def test_int8_deep_levels_stay_close_to_fp32(circular):
    """Only blocks of 128+ channels go int8, and their quantisation error stays small."""
    torch.manual_seed(0)
    net = UNet(UNetConfig(base=32, mults=[1, 4], blocks=1)).eval()  # levels of 32 and 128 channels
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.03)
    net.set_circular(circular)
    net.set_int8(True)
    assert [m.int8 is not None for m in net.modules() if isinstance(m, ResBlock)] == [False, True, False]
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        low = net(x, torch.tensor([0.3]))
        net.set_int8(False)
        ref = net(x, torch.tensor([0.3]))
    rel = ((low - ref).norm() / ref.norm()).item()
    assert 0 < rel < 0.02, rel
    with torch.enable_grad():  # training never takes the int8 path
        net.set_int8(True)
        assert torch.allclose(net(x.repeat(2, 1, 1, 1), torch.tensor([0.3, 0.3]))[:1].detach(), ref, atol=1e-5)


@pytest.mark.skipif(not onednn.available(), reason="this torch build has no oneDNN int8 kernels")
def test_int8_weights_are_packed_again_when_the_weights_change():
    torch.manual_seed(0)
    net = UNet(UNetConfig(base=32, mults=[1, 4], blocks=1)).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.03)
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).contiguous(memory_format=torch.channels_last)
    net.set_int8(True)
    deep = [m for m in net.modules() if isinstance(m, ResBlock) and m.int8 is not None]
    packed = deep[0].int8
    net.set_int8(True)
    assert deep[0].int8 is packed  # unchanged weights: packed once
    with torch.no_grad():
        deep[0].conv2.weight.mul_(2)  # e.g. a fine-tune step, or load_state_dict into the same tensors
    net.set_int8(True)
    assert deep[0].int8 is not packed
    with torch.inference_mode():
        low = net(x, torch.tensor([0.3]))
        net.set_int8(False)
        ref = net(x, torch.tensor([0.3]))
    assert ((low - ref).norm() / ref.norm()).item() < 0.02


@pytest.mark.skipif(not onednn.available(), reason="this torch build has no oneDNN int8 kernels")
def test_int8_takes_negative_and_zero_gains_on_the_weights_scale():
    """The shipped models' FiLM gains are negative on hundreds of channels: the int8 path must take
    them (a positive-only shortcut silently fell back to fp32 everywhere)."""
    torch.manual_seed(0)
    net = UNet(UNetConfig(base=32, mults=[1, 4], blocks=1)).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.03)
    deep = next(m for m in net.modules() if isinstance(m, ResBlock) and m.conv2.out_channels >= 128)
    with torch.no_grad():
        deep.film.bias[:40] = -3.0  # gain 1 + scale < 0 on 40 channels
        deep.film.bias[40] = -1.0  # and exactly 0 on one
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).contiguous(memory_format=torch.channels_last)
    calls = []
    real = onednn.qconv_silu
    with torch.inference_mode():
        ref = net(x, torch.tensor([0.0]))
        net.set_int8(True)
        onednn.qconv_silu = lambda *a: calls.append(1) or real(*a)
        try:
            low = net(x, torch.tensor([0.0]))
        finally:
            onednn.qconv_silu = real
    assert calls == [1]
    assert 0 < ((low - ref).norm() / ref.norm()).item() < 0.02


def test_per_level_blocks_grow_a_trained_net_without_changing_it():
    """Deeper levels added to trained weights start as identities (zero conv2), so growth keeps the function."""
    from imgdiff.train.trainer import load_matching

    small = _net()
    grown = UNet(UNetConfig(base=8, mults=[1, 2, 4], blocks=[2, 2, 4])).eval()
    assert [len(b) for b in grown.down] == [2, 2, 4] and [len(b) for b in grown.up] == [2, 2]
    fresh = load_matching(grown, small.state_dict())
    assert fresh and all(k.startswith("down.2.2.") or k.startswith("down.2.3.") for k in fresh)
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(grown(x, torch.tensor([0.2])), small(x, torch.tensor([0.2])), atol=1e-6)


def test_per_level_blocks_need_one_count_per_level():
    with pytest.raises(ValueError, match="one count per level"):
        UNet(UNetConfig(base=8, mults=[1, 2, 4], blocks=[2, 3]))


@pytest.mark.skipif(not onednn.available(), reason="this torch build has no oneDNN int8 kernels")
def test_a_checkpoint_chooses_its_int8_levels(tmp_path):
    """The pipelines quantise from the checkpoint's measured width down, the default from 128."""
    from imgdiff.device import Runtime
    from imgdiff.hub import load
    from imgdiff.pipelines.common import TiledDenoiser
    from tests.conftest import tiny_checkpoint

    model = load(str(tiny_checkpoint(tmp_path / "d.safetensors")), "denoise", torch.device("cpu"))
    rt = Runtime(torch.device("cpu"), torch.float32, tile=0, overlap=0, int8=True)
    blocks = [m for m in model.denoiser.net.modules() if isinstance(m, ResBlock)]
    widths = {b.conv2.out_channels for b in blocks}
    assert max(widths) < onednn.INT8_MIN_CHANNELS
    TiledDenoiser(model, rt, (32, 32), 1)
    assert all(b.int8 is None for b in blocks)
    model.config["int8_min_channels"] = min(widths)
    TiledDenoiser(model, rt, (32, 32), 1)
    assert all(b.int8 is not None for b in blocks)
    assert onednn.int8_min_channels(model.config) == min(widths)
