"""Lesson 06's network: a small U-Net that maps a noisy image, a time in [0, 1] and (optionally) a class label
to an image-sized output (ε, x0, v or a velocity: the objective decides). See 06_diffusion.ipynb, section 2.

A cut-down, attention-free version of the DDPM U-Net (Ho et al. 2020): three resolutions, one residual block
each, a sinusoidal time embedding added inside every block, and a label embedding with one extra "no label"
token for classifier-free guidance. Shapes are written as (B, C, H, W).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def time_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of times t (B,) in [0, 1] (the Transformer's positional code, as in DDPM):
    [cos(1000 t · f_k), sin(1000 t · f_k)] with frequencies f_k = max_period^(−k / (dim/2)). (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000 * t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=1)


class ResBlock(nn.Module):
    """Two 3×3 convolutions with GroupNorm and SiLU; the time (and label) embedding is added in between,
    one value per channel. (B, c_in, H, W) → (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(8, c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(min(8, c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, c_out, H, W)
        h = h + self.emb(emb)[:, :, None, None]  # the time tells each channel how much noise to expect
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """The smallest U-Net that does the job on 28×28 images (three resolutions, one residual block each):

        in (B, C, 28, 28) ─ conv → (B, c, 28, 28) ─ down1 ──────────────────────── skip1 ─┐
                                                     ↓ stride 2: (B, c, 14, 14)            │
                                                     down2 → (B, 2c, 14, 14) ── skip2 ─┐   │
                                                     ↓ stride 2: (B, 2c, 7, 7)         │   │
                                                     middle → (B, 2c, 7, 7)            │   │
                                                     ↑ ×2, concat skip2 → up2 (B, 2c, 14, 14)
                                                     ↑ ×2, concat skip1 → up1 (B, c, 28, 28)
        out (B, C, 28, 28) ← conv ←───────────────────────────────────────────────────────┘

    Image sizes must be divisible by 4. The time t (B,) in [0, 1] and, for a conditional model, the label
    (B,) (``n_classes`` means "no label") are embedded and added inside every block.
    """

    def __init__(self, channels: int = 1, width: int = 32, n_classes: int = 0, emb_dim: int = 128):
        super().__init__()
        c = width
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # one extra row for the "no label" token of classifier-free guidance
        self.label_emb = nn.Embedding(n_classes + 1, emb_dim) if n_classes else None
        self.n_classes = n_classes
        self.conv_in = nn.Conv2d(channels, c, 3, padding=1)
        self.down1 = ResBlock(c, c, emb_dim)
        self.pool1 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.down2 = ResBlock(c, 2 * c, emb_dim)
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
        self.middle = ResBlock(2 * c, 2 * c, emb_dim)
        self.up2 = ResBlock(4 * c, 2 * c, emb_dim)  # input: upsampled middle (2c) + skip2 (2c)
        self.up1 = ResBlock(3 * c, c, emb_dim)  # input: upsampled up2 (2c) + skip1 (c)
        self.norm_out = nn.GroupNorm(min(8, c), c)
        self.conv_out = nn.Conv2d(c, channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # start by predicting 0: a calm first few steps
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(time_embedding(t, self.emb_dim))  # (B, emb_dim)
        if self.label_emb is not None:
            if labels is None:
                labels = torch.full((len(x),), self.n_classes, device=x.device)  # no label
            emb = emb + self.label_emb(labels)
        h = self.conv_in(x)  # (B, c, H, W)
        skip1 = self.down1(h, emb)  # (B, c, H, W)
        skip2 = self.down2(self.pool1(skip1), emb)  # (B, 2c, H/2, W/2)
        h = self.middle(self.pool2(skip2), emb)  # (B, 2c, H/4, W/4)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, 2c, H/2, W/2)
        h = self.up2(torch.cat([h, skip2], dim=1), emb)  # (B, 2c, H/2, W/2)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, 2c, H, W)
        h = self.up1(torch.cat([h, skip1], dim=1), emb)  # (B, c, H, W)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, C, H, W): ε or v
