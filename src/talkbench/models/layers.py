"""StyleGAN2 building blocks shared by the reference models (equalised lr, blur, modulated conv, residual blocks).

Written from the StyleGAN2 paper (Karras et al. 2020) and the layer structure of LIA's ``networks/`` (Wang et al.
2022). Two deliberate departures from those codebases, both for speed under bf16 / torch.compile:

- blur uses a depthwise ``conv2d`` instead of the generic ``upfirdn2d`` reshape trick (same result, the kernel is
  symmetric so flipping does not matter);
- modulated convolutions use the *non-fused* form by default (scale activations by the style, shared-weight conv,
  scale the output by the demodulation factor). It equals the grouped per-sample conv mathematically and lets cuDNN
  batch it. ``ModulatedConv2d(fused=True)`` (or ``set_fused(model, True)``) selects the StyleGAN2 fused form instead:
  per-sample weights, modulated and demodulated, in one grouped conv call (``modulated_conv2d_fused``); at batch 1
  (streaming) it is one plain conv with a precomputed weight. tests/models/test_layers.py checks both forms agree.

Channels-last: every layer here works on ``torch.channels_last`` inputs unchanged (``to_channels_last``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def blur_kernel(k=(1, 3, 3, 1)) -> torch.Tensor:
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


class Blur(nn.Module):
    """Depthwise FIR filter with asymmetric padding (pad0 before, pad1 after on both axes)."""

    def __init__(self, pad: tuple[int, int], scale: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", blur_kernel() * scale, persistent=False)
        self.pad = pad

    def forward(self, x):
        c = x.shape[1]
        x = F.pad(x, (self.pad[0], self.pad[1], self.pad[0], self.pad[1]))
        k = self.kernel.to(x.dtype).expand(c, 1, *self.kernel.shape)
        return F.conv2d(x, k, groups=c)


class FusedLeakyReLU(nn.Module):
    """bias + leaky ReLU(0.2) × √2, the StyleGAN2 activation (gain keeps the signal variance at 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return F.leaky_relu(x + self.bias.view(shape), 0.2) * SQRT2


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights ~ N(0, 1), scaled by 1/sqrt(fan_in) at run time."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale = 1.0 / math.sqrt(in_dim)
        self.activate = activate

    def forward(self, x):
        if self.activate:
            out = F.linear(x, self.weight * self.scale)
            return F.leaky_relu(out + self.bias, 0.2) * SQRT2
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class ConvLayer(nn.Sequential):
    """[blur →] conv [→ bias + lrelu]; a downsampling layer blurs first and uses stride 2 (anti-aliased)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, downsample: bool = False, bias: bool = True,
                 activate: bool = True):
        layers: list[nn.Module] = []
        if downsample:
            p = 2 + (kernel - 1)  # len(blur) - factor + (kernel - 1)
            layers.append(Blur(((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel // 2
        layers.append(EqualConv2d(in_ch, out_ch, kernel, stride, padding, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_ch) if bias else nn.LeakyReLU(0.2))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """StyleGAN2 residual downsampling block: (H, W) → (H/2, W/2)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, bias=False, activate=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


def modulated_conv2d_fused(x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor, demodulate: bool,
                           upsample: bool) -> torch.Tensor:
    """StyleGAN2's fused modulated conv: one grouped conv with per-sample weights w * s (and demodulated).

    x (B, in, H, W); weight (out, in, k, k), already scaled; s (B, in) styles. Returns (B, out, H', W') before any
    upsampling blur: (H, W) for a plain conv, (2H+1, 2W+1) for the stride-2 transposed conv.
    """
    b, c_in, h, w_ = x.shape
    c_out, _, k, _ = weight.shape
    wb = weight[None].float() * s.float()[:, None, :, None, None]  # (B, out, in, k, k)
    if demodulate:
        wb = wb * torch.rsqrt(wb.pow(2).sum((2, 3, 4), keepdim=True) + 1e-8)
    wb = wb.to(x.dtype)
    if upsample:
        wt = wb.transpose(1, 2).reshape(b * c_in, c_out, k, k)  # conv_transpose2d weights: (in, out/groups, k, k)
        out = F.conv_transpose2d(x.reshape(1, b * c_in, h, w_), wt, stride=2, groups=b)
    else:
        out = F.conv2d(x.reshape(1, b * c_in, h, w_), wb.reshape(b * c_out, c_in, k, k), padding=k // 2, groups=b)
    return out.reshape(b, c_out, *out.shape[2:])


class ModulatedConv2d(nn.Module):
    """Style-modulated conv (StyleGAN2 eq. 1-3), optionally ×2 upsampling via transposed conv + blur."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False, fused: bool = False):
        super().__init__()
        self.fused = fused
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)  # styles start at 1 = plain conv
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate, self.upsample, self.kernel = demodulate, upsample, kernel
        if upsample:
            p = (4 - 2) - (kernel - 1)
            self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), scale=4.0)

    def forward(self, x, style):
        s = self.modulation(style)  # (B, in)
        w = self.weight * self.scale  # (out, in, k, k)
        if self.fused:
            x = modulated_conv2d_fused(x, w, s, self.demodulate, self.upsample)  # (B, out, H or 2H+1, W or 2W+1)
            return self.blur(x) if self.upsample else x
        x = x * s[:, :, None, None].to(x.dtype)
        if self.upsample:
            x = F.conv_transpose2d(x, w.transpose(0, 1).to(x.dtype), stride=2)  # (B, out, 2H+1, 2W+1)
            x = self.blur(x)  # (B, out, 2H, 2W)
        else:
            x = F.conv2d(x, w.to(x.dtype), padding=self.kernel // 2)
        if self.demodulate:
            # sum over (in, k, k) of (w * s)^2 = s^2 @ sum_k(w^2)^T; computed in fp32 for stability under bf16
            d = torch.rsqrt(s.float().pow(2) @ w.float().pow(2).sum((2, 3)).t() + 1e-8)  # (B, out)
            x = x * d[:, :, None, None].to(x.dtype)
        return x


class StyledConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel, style_dim, upsample=upsample)
        self.act = FusedLeakyReLU(out_ch)

    def forward(self, x, style):
        return self.act(self.conv(x, style))


def upsample2x(x):
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def set_fused(model: nn.Module, fused: bool = True) -> nn.Module:
    """Switch every ModulatedConv2d of ``model`` to the fused (grouped, per-sample weight) form or back."""
    for m in model.modules():
        if isinstance(m, ModulatedConv2d):
            m.fused = fused
    return model


def to_channels_last(model: nn.Module) -> nn.Module:
    """Channels-last parameters and buffers (4-d ones); feed inputs as ``x.contiguous(memory_format=...)``."""
    return model.to(memory_format=torch.channels_last)
