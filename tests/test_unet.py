"""The UNet's inference fast path (FiLM folded into conv1, in-place accumulation) against the
training path it replaces."""

from __future__ import annotations

import torch

from imgdiff.models.unet import UNet, UNetConfig


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
