"""oneDNN kernels for one-level CPU inference: each ResBlock's conv-SiLU and conv-add fused, and
int8 convolutions for its deep levels where the CPU has VNNI.

Fusing saves two passes over every activation (SiLU, residual add), a quarter of the network's
CPU time outside the convolutions. int8 only in the deep levels: with activations quantised per
tensor on the fly and weights per output channel, the 32- and 64-channel levels cost 0.26 / 0.015
dB on photographs (sigma 25), the 128- and 256-channel levels nothing measurable, and those are
where int8 pays (a 3x3 convolution there 3-4x faster than fp32 on a 2-core Xeon).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

INT8_MIN_CHANNELS = 128  # blocks at least this wide run their convolutions in int8


def int8_min_channels(config: dict) -> int:
    """The checkpoint's own int8 threshold where it was measured, else INT8_MIN_CHANNELS.

    What int8 costs depends on the signal a level carries: the upscalers refine a small residual
    (clean - bicubic), and int8 at every level of theirs cost at most 0.004 dB on Set5 / Set14
    while saving ~16 % of an x4 call, where denoise's 32-channel level costs 0.26 dB."""
    return int(config.get("int8_min_channels", INT8_MIN_CHANNELS))  # hub.check_config_values checked it


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """This torch build has the fused and quantised oneDNN convolutions (CPU builds since ~2.1)."""
    try:
        ops = [torch.ops.mkldnn._convolution_pointwise, torch.ops.mkldnn._convolution_pointwise_]
        ops += [torch.ops.onednn.qconv2d_pointwise, torch.ops.onednn.qconv_prepack]
        return torch.backends.mkldnn.is_available() and all(ops)
    except (AttributeError, RuntimeError):
        return False


def fusable(x: torch.Tensor) -> bool:
    """fp32 on the CPU outside autocast: the fused kernels' dtypes then match the module's."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu") and available()


def _padded(conv: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Circular padding (tileable textures) is applied first and the convolution is then valid."""
    if conv.padding_mode == "zeros":
        return x, list(conv.padding)
    x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
    return x.contiguous(memory_format=torch.channels_last), [0, 0]


def conv_silu(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """silu(conv(x)) with conv's geometry and the given (noise-folded) weights, fp32."""
    x, padding = _padded(conv, x)
    return torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, padding, list(conv.stride), list(conv.dilation), conv.groups, "swish", [], ""
    )


def conv_add_(acc: torch.Tensor, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """acc += conv(x), in place, fp32."""
    x, padding = _padded(conv, x)
    return torch.ops.mkldnn._convolution_pointwise_.binary(
        acc, x, conv.weight, conv.bias, padding, list(conv.stride), list(conv.dilation), conv.groups,
        "add", 1.0, None, [], None,
    )  # fmt: skip


def _quantise(x: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """x as asymmetric u8 over its own range (no calibration set baked in), with scale and zero point."""
    lo, hi = (float(v) for v in torch.aminmax(x.permute(0, 2, 3, 1).reshape(-1)))  # a view when channels-last
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-8) / 255
    zp = min(255, max(0, round(-lo / scale)))
    return _to_u8(x.float(), scale, zp), scale, zp


def _to_u8(x: torch.Tensor, scale: float, zp: int) -> torch.Tensor:
    """round(x / scale) + zp clamped to 0..255, in one pass where torch has the fused kernel (2-3x
    faster than the plain expression's five passes; a whole `imgdiff denoise` call -3 %)."""
    if hasattr(torch, "quantize_per_tensor"):  # deprecated (quint8 tensors); the kernel is what we want
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.quantize_per_tensor(x, scale, zp, torch.quint8).int_repr()
    return (x * (1 / scale)).round_().add_(zp).clamp_(0, 255).to(torch.uint8)


@dataclass
class PackedConv:
    """A convolution's weights as s8 per output channel, in oneDNN's layout. The layout does not
    depend on the input's scale or size, and a per-channel factor on the weights (the noise
    level's FiLM gain, folded in; negative on many channels) is only a factor on w_scale, which
    oneDNN applies to the int32 sums with its sign: packed once per model."""

    packed: torch.Tensor
    w_scale: torch.Tensor
    w_zero_points: torch.Tensor  # symmetric: all zero
    source: tuple[int, int]  # (data_ptr, _version) of the fp32 weights packed

    @classmethod
    def of(cls, conv: nn.Conv2d) -> PackedConv:
        w = conv.weight.detach().float()
        w_scale = w.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / 127
        qw = (w / w_scale[:, None, None, None]).round_().clamp_(-128, 127).to(torch.int8)
        pad = list(conv.padding) if conv.padding_mode == "zeros" else [0, 0]
        packed = torch.ops.onednn.qconv_prepack(
            qw, w_scale, 1.0, 0, list(conv.stride), pad, list(conv.dilation), conv.groups, None
        )
        return cls(packed, w_scale, torch.zeros(w.shape[0], dtype=torch.int64), weights_id(conv))


def weights_id(conv: nn.Conv2d) -> tuple[int, int]:
    return conv.weight.data_ptr(), conv.weight._version


def _qconv(conv: nn.Conv2d, w: PackedConv, w_scale: torch.Tensor, x: torch.Tensor, bias: torch.Tensor, **post):
    x, padding = _padded(conv, x)
    qx, x_scale, x_zp = _quantise(x)
    geometry = list(conv.stride), padding, list(conv.dilation), conv.groups
    zps = w.w_zero_points
    bias = bias.float()
    if "acc" in post:
        acc = post["acc"].contiguous(memory_format=torch.channels_last)  # oneDNN's sum needs a dense layout
        return torch.ops.onednn.qconv2d_pointwise.binary(
            qx, x_scale, x_zp, w.packed, w_scale, zps, acc, bias, *geometry, 1.0, 0, acc.dtype, 1.0, 0, "sum", 1.0,
            None, [], None,
        )  # fmt: skip
    return torch.ops.onednn.qconv2d_pointwise(
        qx, x_scale, x_zp, w.packed, w_scale, zps, bias, *geometry, 1.0, 0, torch.float32, "swish", [], ""
    )


def qconv_silu(conv: nn.Conv2d, w: PackedConv, gain: torch.Tensor, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """silu(conv(x)) in int8 with conv's weights times a per-channel gain, fp32 out."""
    return _qconv(conv, w, w.w_scale * gain, x, bias)


def qconv_add(acc: torch.Tensor, conv: nn.Conv2d, w: PackedConv, x: torch.Tensor) -> torch.Tensor:
    """acc + conv(x) in int8, in acc's dtype (a new tensor)."""
    return _qconv(conv, w, w.w_scale, x, conv.bias, acc=acc)
