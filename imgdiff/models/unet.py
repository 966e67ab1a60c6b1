"""Half-resolution conditional UNet: the one denoiser family behind every task.

Pixel-unshuffle moves 2x2 neighbourhoods into channels so every convolution runs on a quarter of
the pixels; on two CPU cores that is the difference between 8 s/MP and ~1 s/MP.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from . import onednn


@dataclass
class UNetConfig:
    """Everything needed to rebuild the network; stored inside every checkpoint."""

    in_channels: int = 3  # channels of the noisy image x
    cond_channels: int = 0  # channels of the condition concatenated to x (e.g. upsampled LR)
    out_channels: int = 3
    base: int = 32
    mults: list[int] = field(default_factory=lambda: [1, 2, 4])
    blocks: int | list[int] = 2  # residual blocks per level: one count for all, or one per level
    unshuffle: int = 2
    emb_dim: int = 128

    def level_blocks(self) -> list[int]:
        """Blocks at each level; a list lets capacity grow where the grid is small and int8 is cheap."""
        if isinstance(self.blocks, int):
            return [self.blocks] * len(self.mults)
        if len(self.blocks) != len(self.mults):
            raise ValueError(f"blocks {self.blocks} needs one count per level of mults {self.mults}")
        return list(self.blocks)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


class NoiseEmbedding(nn.Module):
    """Fourier features of c_noise followed by an MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        # 0.5 .. 500, log-spaced; built from a list because tensor arithmetic under the meta device
        # (hub.check_tensors) imports torch._dynamo: 1.8 s of every CLI start
        n = dim // 2
        self.register_buffer("freqs", torch.tensor([0.5 * 1000 ** (i / max(n - 1, 1)) for i in range(n)]))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        a = c_noise[:, None].float() * self.freqs[None]
        return self.mlp(torch.cat([a.cos(), a.sin()], dim=1))


class ResBlock(nn.Module):
    """conv-act-conv residual block; the noise level enters as a per-channel scale and shift."""

    def __init__(self, ch_in: int, ch_out: int, emb_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch_in, ch_out, 3, padding=1)
        self.conv2 = nn.Conv2d(ch_out, ch_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * ch_out)
        self.skip = nn.Conv2d(ch_in, ch_out, 1) if ch_in != ch_out else nn.Identity()
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.int8: tuple[onednn.PackedConv, onednn.PackedConv] | None = None  # UNet.set_int8

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """At inference with one noise level the block may reuse x's storage for its output."""
        scale, shift = self.film(emb).chunk(2, dim=1)
        if not _one_level_inference(emb):
            h = self.conv1(x) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
            return self.skip(x) + self.conv2(F.silu(h))
        # fold the scale and shift into conv1's weights (saves a multiply and an add over the whole
        # activation), and accumulate in place in the skip's precision: fp32 += bf16 in place is 2x
        # faster on the CPU than the out-of-place mixed-dtype add
        g = 1 + scale[0]
        b1 = self.conv1.bias * g + shift[0]
        if self.int8:
            h = onednn.qconv_silu(self.conv1, self.int8[0], g, x, b1)
            return onednn.qconv_add(self.skip(x), self.conv2, self.int8[1], h)
        w1 = self.conv1.weight * g[:, None, None, None]
        if onednn.fusable(x):
            return onednn.conv_add_(self.skip(x), self.conv2, onednn.conv_silu(self.conv1, x, w1, b1))
        return _accumulate(self.skip(x), self.conv2(F.silu(self.conv1._conv_forward(x, w1, b1))))


def _one_level_inference(batch: torch.Tensor) -> bool:
    """No gradients and one noise level for the whole batch: the fast paths below are exact."""
    return batch.shape[0] == 1 and not torch.is_grad_enabled()


def _accumulate(acc: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """acc + y, in place when acc's dtype can hold the sum (inference only)."""
    return acc.add_(y) if torch.promote_types(acc.dtype, y.dtype) == acc.dtype else acc + y


class UNet(nn.Module):
    """F(x, c_noise, cond) -> residual-free raw output; preconditioning lives in diffusion/."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        r2 = cfg.unshuffle**2
        chs = [cfg.base * m for m in cfg.mults]
        nblocks = cfg.level_blocks()
        self.emb = NoiseEmbedding(cfg.emb_dim)
        self.head = nn.Conv2d((cfg.in_channels + cfg.cond_channels) * r2, chs[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, ch in enumerate(chs):
            self.down.append(nn.ModuleList([ResBlock(ch, ch, cfg.emb_dim) for _ in range(nblocks[i])]))
            if i + 1 < len(chs):
                self.downsample.append(nn.Conv2d(ch, chs[i + 1], 2, stride=2))
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in range(len(chs) - 2, -1, -1):
            self.upsample.append(nn.ConvTranspose2d(chs[i + 1], chs[i], 2, stride=2))
            self.up.append(nn.ModuleList([ResBlock(chs[i], chs[i], cfg.emb_dim) for _ in range(nblocks[i])]))
        self.tail = nn.Conv2d(chs[0], cfg.out_channels * r2, 3, padding=1)

    @property
    def multiple(self) -> int:
        """Input sides must be divisible by this."""
        return self.cfg.unshuffle * 2 ** (len(self.cfg.mults) - 1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is not None:
            x = torch.cat([x, cond], dim=1)
        emb = self.emb(c_noise)
        # head and tail stay fp32 under autocast: the full-resolution residual stream then stays fp32 too
        # (bf16 there costs ~0.08 dB at 40 dB; the body's bf16 convolutions cost nothing measurable)
        full = torch.autocast(x.device.type, enabled=False)
        with full:
            h = self.head(F.pixel_unshuffle(x, self.cfg.unshuffle).float())
        skips = []
        for i, blocks in enumerate(self.down):
            for b in blocks:
                h = b(h, emb)
            if i < len(self.downsample):
                skips.append(h)
                h = self.downsample[i](h)
        inplace = _one_level_inference(c_noise)
        for up, blocks in zip(self.upsample, self.up, strict=False):
            h = _accumulate(skips.pop(), up(h)) if inplace else up(h) + skips.pop()
            for b in blocks:
                h = b(h, emb)
        with full:
            return F.pixel_shuffle(self.tail(h.float()), self.cfg.unshuffle)

    def set_int8(self, on: bool, min_channels: int = onednn.INT8_MIN_CHANNELS) -> None:
        """int8 convolutions in the blocks at least min_channels wide (one-level inference)."""
        for m in self.modules():
            if not isinstance(m, ResBlock):
                continue
            if not (on and m.conv2.out_channels >= min_channels):
                m.int8 = None
            elif m.int8 is None or [p.source for p in m.int8] != [onednn.weights_id(c) for c in (m.conv1, m.conv2)]:
                m.int8 = (onednn.PackedConv.of(m.conv1), onednn.PackedConv.of(m.conv2))

    def set_circular(self, on: bool) -> None:
        """Wrap-around padding makes generated textures tile seamlessly."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.padding != (0, 0):
                m.padding_mode = "circular" if on else "zeros"
