"""Identity-decoupled motion encoder + LIA-style warping renderer (AniTalker stage 1 on a LIA backbone).

References (layer structure read, code written here):
- LIA, Wang et al., "Latent Image Animator", ICLR 2022 (wyhsirius/LIA networks/{encoder,styledecoder}.py):
  StyleGAN2 residual encoder, linear motion decomposition (QR-orthogonalised directions), a synthesis network that
  predicts a flow + occlusion mask at every scale and warps the encoder's skip features with it.
- AniTalker, Liu et al. 2024 (X-LANCE/AniTalker code/networks/encoder.py): the hierarchical aggregation layer (HAL,
  softmax-weighted sum of pooled features of every encoder stage) and the identity / motion decoupling heads.

Conventions: images are float in [-1, 1], (B, 3, S, S). ``alpha`` is the 20-number motion code, ``w`` the appearance
code (style_dim). Rendering uses ``latent = w_source + D(alpha)`` where D is the orthogonal direction basis.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvLayer, EqualConv2d, EqualLinear, ModulatedConv2d, ResBlock, StyledConv, upsample2x


# ----------------------------------------------------------------------------------------------------------------
# Config and presets
# ----------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MotionConfig:
    size: int = 256  # image side; a power of two >= 16
    style_dim: int = 512  # appearance code / direction length (LIA: 512)
    motion_dim: int = 20  # number of orthogonal motion directions (LIA, AniTalker: 20)
    channel_base: int = 16384  # channels at resolution r = min(max_channels, channel_base // r) (StyleGAN2, cm=1)
    max_channels: int = 512
    head_hidden: int = 512  # width of the identity / motion decoupling MLPs (AniTalker: 512)
    motion_layers: int = 4  # hidden layers of the motion MLP before the motion_dim projection (LIA: 4)
    disc_channel_base: int = 16384  # discriminator, same rule
    disc_max_channels: int = 512
    # Standardise the motion code per dimension (BatchNorm without affine: batch statistics in training, running ones
    # at inference). The encoder's raw code barely changes between frames of a clip (measured on the tiny model at
    # init: std over a clip's frames 0.003 against a mean |alpha| of 0.17, and training shrank it to 0.0009), so the
    # renderer's styles do not see the motion and CPU-length training stays at `static`. Standardised, the
    # frame-to-frame change reaches the renderer at a usable scale. Off in the paper preset (LIA has no such layer).
    motion_norm: bool = False
    # A coarse flow: a linear map from the motion-code change (driver - source) to the coefficients of a few smooth
    # flow fields (``flow_basis``: polynomials up to degree 2, and a centred window times 1, x, y), added to every
    # scale's flow. Zero when driver = source and at init, so an untrained renderer is still `static`. Measured on the
    # demo's turning heads (tiny-mouth, 1000 CPU steps): without it the learned flows stay at 0.1 px at 64 px against
    # 2-5 px of real motion, and the rendered head does not move (yaw std 0.1-0.6 deg against 4-8 deg); a map from the
    # whole latent (source appearance + driver motion) learnt a constant warp instead (3 px, worse than static).
    # Off in the paper preset (LIA has no such layer).
    coarse_flow: bool = False
    # The coarse flow also gets a window on the mouth of a curated crop (``MOUTH_CENTRE``) times 1, x, y: a local shift
    # and stretch there, the jaw drop and lip parting of speech, read from the code change like the head's fields.
    coarse_mouth: bool = False

    def channels(self, res: int, disc: bool = False) -> int:
        base, cap = (self.disc_channel_base, self.disc_max_channels) if disc else (self.channel_base, self.max_channels)
        return int(min(cap, base // res))

    def __post_init__(self):
        if self.size < 16 or self.size & (self.size - 1):
            raise ValueError(f"size must be a power of two >= 16, got {self.size}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MotionConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


PRESETS: dict[str, MotionConfig] = {
    # ~47 M generator parameters at 256 px, as in AniTalker / LIA (channel_multiplier 1).
    "base": MotionConfig(),
    # Same topology at 64 px with narrow channels (0.55 M generator, ~0.2 GFLOP per encoded frame), so a few
    # hundred training steps fit in a CPU test.
    "tiny": MotionConfig(size=64, style_dim=64, channel_base=1024, max_channels=64, head_hidden=64,
                         motion_layers=2, disc_channel_base=512, disc_max_channels=32),
}
# The tiny model with the standardised motion code, for speech-driven mouths (issue 10's learning test). Measured on
# the curated talking demo (600 steps, batch 4, mouth-region L1 weight 30, half the pairs within 3 frames): a linear
# probe from its codes to the lip gap reaches 0.73-0.86 on the train clips and 0.25-0.50 on the held-out identity,
# where plain tiny's codes barely change between frames (std 0.0009 after 300 steps). It is not the tiny default: at
# 150 steps on the moving heads of test_beats_static it reached 17.98 dB against static's 18.08 (plain tiny: 18.40;
# why it is lower there was not measured).
PRESETS["tiny-mouth"] = replace(PRESETS["tiny"], motion_norm=True)
# tiny-mouth with the coarse flow: the tiny renderer that moves and turns the head in CPU minutes (issues 10 and 16).
PRESETS["tiny-turn"] = replace(PRESETS["tiny-mouth"], coarse_flow=True)
PRESETS["tiny-lips"] = replace(PRESETS["tiny-turn"], coarse_mouth=True)


def get_config(preset: str) -> MotionConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    return PRESETS[preset]


# ----------------------------------------------------------------------------------------------------------------
# Encoder: StyleGAN2 residual downsampling + HAL + identity / motion heads
# ----------------------------------------------------------------------------------------------------------------

class EncoderOutput(NamedTuple):
    w: torch.Tensor  # (B, style_dim) HAL appearance code
    feats: list  # skip features at 8, 16, ..., size px (coarse → fine), channels(r) each, then the input image
    identity: torch.Tensor  # (B, style_dim) identity embedding
    motion: torch.Tensor  # (B, style_dim) identity-excluded motion embedding
    alpha: torch.Tensor  # (B, motion_dim) motion magnitudes along the direction basis


def mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 1) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        mods.append(EqualLinear(d, hidden, activate=True))
        d = hidden
    mods.append(EqualLinear(d, out_dim))
    return nn.Sequential(*mods)


class HierarchicalAggregation(nn.Module):
    """AniTalker's HAL: global-average-pool every stage, project to style_dim, softmax-weighted sum."""

    def __init__(self, stage_channels: list[int], style_dim: int):
        super().__init__()
        self.proj = nn.ModuleList(
            nn.Identity() if c == style_dim else EqualLinear(c, style_dim) for c in stage_channels)
        self.logits = nn.Parameter(torch.zeros(len(stage_channels)))  # uniform weights at init

    def forward(self, stages: list[torch.Tensor]) -> torch.Tensor:
        weights = torch.softmax(self.logits, 0)
        pooled = [p(s.mean((2, 3))) for p, s in zip(self.proj, stages)]  # each (B, style_dim)
        return sum(wt * v for wt, v in zip(weights, pooled))


class MotionEncoder(nn.Module):
    def __init__(self, cfg: MotionConfig):
        super().__init__()
        log = int(math.log2(cfg.size))
        self.stem = ConvLayer(3, cfg.channels(cfg.size), 1)
        blocks, stage_ch = [], [cfg.channels(cfg.size)]
        for i in range(log, 2, -1):  # size → 4 px
            blocks.append(ResBlock(cfg.channels(2 ** i), cfg.channels(2 ** (i - 1))))
            stage_ch.append(cfg.channels(2 ** (i - 1)))
        self.blocks = nn.ModuleList(blocks)
        self.final = EqualConv2d(cfg.channels(4), cfg.style_dim, 4, bias=False)  # 4×4 → 1×1
        stage_ch.append(cfg.style_dim)
        self.hal = HierarchicalAggregation(stage_ch, cfg.style_dim)
        self.identity_head = mlp(cfg.style_dim, cfg.head_hidden, cfg.style_dim)
        self.motion_head = mlp(cfg.style_dim, cfg.head_hidden, cfg.style_dim)
        self.motion_fc = mlp(cfg.style_dim, cfg.style_dim, cfg.motion_dim, layers=cfg.motion_layers)
        self.motion_norm = nn.BatchNorm1d(cfg.motion_dim, affine=False) if cfg.motion_norm else nn.Identity()

    def forward(self, img: torch.Tensor) -> EncoderOutput:
        h = self.stem(img)  # (B, C_size, S, S)
        stages = [h]
        for block in self.blocks:
            h = block(h)  # halves the side each time, down to 4 px
            stages.append(h)
        stages.append(self.final(h))  # (B, style_dim, 1, 1)
        w = self.hal(stages)  # (B, style_dim)
        identity = self.identity_head(w)  # (B, style_dim)
        motion = self.motion_head(w)  # (B, style_dim)
        alpha = self.motion_norm(self.motion_fc(motion).float())  # (B, motion_dim)
        # skip features at 8 … size px (the 4 px stage feeds nothing), then the image itself: the renderer warps it
        feats = stages[:-2][::-1] + [img]
        return EncoderOutput(w, feats, identity, motion, alpha)


# ----------------------------------------------------------------------------------------------------------------
# Linear motion decomposition and the warping synthesis network
# ----------------------------------------------------------------------------------------------------------------

class MotionDirections(nn.Module):
    """A learnable style_dim × motion_dim matrix, orthogonalised by QR: D(alpha) = Q @ alpha (LIA's LMD)."""

    def __init__(self, style_dim: int, motion_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(style_dim, motion_dim))

    def basis(self) -> torch.Tensor:
        q, _ = torch.linalg.qr(self.weight.float() + 1e-8)  # (style_dim, motion_dim), orthonormal columns
        return q

    def forward(self, alpha: torch.Tensor) -> torch.Tensor:
        return alpha.float() @ self.basis().t()  # (B, style_dim)


WINDOW_SIGMA = 0.4  # the coarse flow's centred window, in the flow grid's [-1, 1] units (a curated face's half-width)
# The mouth window (``coarse_mouth``): where the inner lips sit in a curated crop, in the same units (measured with the
# face mesh on the demo's curated clips: x -0.09 … -0.02, y 0.20 … 0.30), and its width.
MOUTH_CENTRE, MOUTH_SIGMA_GRID = (0.0, 0.25), 0.15
MOUTH_STRETCH = 2 * 12 - 1  # the coarse coefficient (y axis, mouth window × y) that parts the lips


def flow_basis(size: int, device=None, mouth: bool = False) -> torch.Tensor:
    """(9, size, size) smooth fields on the [-1, 1] grid: 1, x, y, x², xy, y², and a centred Gaussian window g times
    1, x, y (a face moving against its surround: what a turn of the head does to a crop). With ``mouth``, 12: also a
    window on the mouth times 1, x, y about its centre (the jaw dropping, the lips parting)."""
    t = torch.linspace(-1, 1, size, device=device)
    y, x = torch.meshgrid(t, t, indexing="ij")
    g = torch.exp(-(x * x + y * y) / (2 * WINDOW_SIGMA ** 2))
    fields = [torch.ones_like(x), x, y, x * x, x * y, y * y, g, g * x, g * y]
    if mouth:
        mx, my = x - MOUTH_CENTRE[0], y - MOUTH_CENTRE[1]
        m = torch.exp(-(mx * mx + my * my) / (2 * MOUTH_SIGMA_GRID ** 2))
        fields += [m, m * mx / MOUTH_SIGMA_GRID, m * my / MOUTH_SIGMA_GRID]
    return torch.stack(fields)


class CoarseFlow(nn.Module):
    """Motion-code change (B, motion_dim) → (B, 2, r, r): per axis, a linear combination of the ``flow_basis`` fields
    whose coefficients are linear in the change (no bias: no change, no flow; zero at init)."""

    def __init__(self, motion_dim: int, mouth: bool = False):
        super().__init__()
        self.mouth = mouth
        self.fields = 12 if mouth else 9
        self.coef = nn.Linear(motion_dim, 2 * self.fields, bias=False)
        nn.init.zeros_(self.coef.weight)

    def forward(self, delta: torch.Tensor, size: int) -> torch.Tensor:
        c = self.coef(delta.float()).view(-1, 2, self.fields)
        return torch.einsum("bak,khw->bahw", c, flow_basis(size, delta.device, self.mouth))


class ToFlow(nn.Module):
    """Predict a flow (2) + occlusion mask (1) at this scale, refine the coarser one, warp the skip feature."""

    def __init__(self, in_ch: int, style_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        # Start from the identity warp with a half-open mask (LIA initialises this conv randomly: its flows then
        # start as large random warps that the masks learn to shut, and fine scales stop carrying detail; measured
        # on a one-clip overfit here, zero-init reaches a higher PSNR in the same steps).
        nn.init.zeros_(self.conv.weight)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, feat, prev=None, coarse=None):
        """``prev``: the coarser scale's learned flow; ``coarse`` (B, 2, H, W): a coarse flow added at this scale only.
        Returns the warped feature, the next input, the learned flow (for the next scale) and the flow used."""
        out = self.conv(x, style) + self.bias.to(x.dtype)  # (B, 3, H, W)
        if prev is not None:
            out = out + upsample2x(prev)
        used = out if coarse is None else torch.cat([out[:, :2] + coarse.to(out.dtype), out[:, 2:]], 1)
        mask = torch.sigmoid(used[:, 2:3])  # (B, 1, H, W)
        warped = warp(feat, used).to(x.dtype) * mask
        return warped, warped + x * (1 - mask), out, used


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` (B, C, H, W) at the identity grid plus tanh(flow[:, :2]) (normalised offsets, same H, W)."""
    h, w = flow.shape[-2:]
    ys = torch.linspace(-1, 1, h, device=flow.device)
    xs = torch.linspace(-1, 1, w, device=flow.device)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)  # (H, W, 2) as (x, y)
    grid = base + torch.tanh(flow[:, :2].float()).permute(0, 2, 3, 1)  # (B, H, W, 2)
    return F.grid_sample(img.float(), grid, align_corners=True).to(img.dtype)


class WarpingSynthesis(nn.Module):
    """Constant 4 px input → modulated convs up to ``size``; at each scale ≥ 8 px a flow warps the encoder feature."""

    def __init__(self, cfg: MotionConfig):
        super().__init__()
        self.directions = MotionDirections(cfg.style_dim, cfg.motion_dim)
        self.input = nn.Parameter(torch.randn(1, cfg.channels(4), 4, 4))
        self.conv1 = StyledConv(cfg.channels(4), cfg.channels(4), 3, cfg.style_dim)
        self.coarse = CoarseFlow(cfg.motion_dim, cfg.coarse_mouth) if cfg.coarse_flow else None
        self.up_convs, self.convs, self.to_flows, self.to_rgbs = (nn.ModuleList() for _ in range(4))
        in_ch = cfg.channels(4)
        for i in range(3, int(math.log2(cfg.size)) + 1):
            out_ch = cfg.channels(2 ** i)
            self.up_convs.append(StyledConv(in_ch, out_ch, 3, cfg.style_dim, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, 3, cfg.style_dim))
            self.to_flows.append(ToFlow(out_ch, cfg.style_dim))
            self.to_rgbs.append(EqualConv2d(out_ch, 3, 1))
            # The image path is a residual over the warped source image: zero at init, so that with the zero-init
            # flows above an untrained renderer returns the source frame exactly (the `static` baseline) and
            # training only moves away from it where that lowers the loss.
            nn.init.zeros_(self.to_rgbs[-1].weight)
            in_ch = out_ch

    def forward(self, latent: torch.Tensor, feats: list[torch.Tensor], return_flows: bool = False,
                delta: torch.Tensor | None = None):
        """``delta`` (B, motion_dim): the driver's motion code minus the source's, which the coarse flow reads (needed
        when the config has one)."""
        if self.coarse is not None and delta is None:
            raise ValueError("this renderer has a coarse flow: pass delta (driver motion code - source motion code)")
        x = self.conv1(self.input.expand(latent.shape[0], -1, -1, -1), latent)  # (B, C4, 4, 4)
        rgb = flow = None
        flows = []
        for up, conv, to_flow, to_rgb, feat in zip(self.up_convs, self.convs, self.to_flows, self.to_rgbs, feats):
            x = conv(up(x, latent), latent)  # (B, C_r, r, r)
            coarse = None if self.coarse is None else self.coarse(delta, x.shape[-1])
            warped, x, flow, used = to_flow(x, latent, feat, flow, coarse)
            rgb = to_rgb(warped) if rgb is None else to_rgb(warped) + upsample2x(rgb)  # (B, 3, r, r)
            flows.append(used)
        flow = used
        # The source image, warped by the finest flow. It may be larger than the model (inference passes the full-size
        # source): flow (normalised offsets) and residual are then upsampled to it, so detail is not lost to `size`.
        image = feats[len(self.to_flows)]
        if image.shape[-2:] != rgb.shape[-2:]:
            flow = F.interpolate(flow.float(), size=image.shape[-2:], mode="bilinear", align_corners=True)
            rgb = F.interpolate(rgb.float(), size=image.shape[-2:], mode="bilinear", align_corners=False)
        rgb = rgb.to(image.dtype) + warp(image, flow)  # (B, 3, H, W) at the image's size
        return (rgb, flows) if return_flows else rgb


# ----------------------------------------------------------------------------------------------------------------
# Generator (encoder + renderer) and discriminator
# ----------------------------------------------------------------------------------------------------------------

class MotionGenerator(nn.Module):
    def __init__(self, cfg: MotionConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = MotionEncoder(cfg)
        self.synthesis = WarpingSynthesis(cfg)

    def render(self, w: torch.Tensor, alpha: torch.Tensor, feats: list[torch.Tensor],
               alpha_source: torch.Tensor | None = None) -> torch.Tensor:
        """Draw motion code ``alpha`` on the source (``w``, ``feats``); ``alpha_source``, the source's own code, is
        what a coarse flow measures the change from."""
        latent = (w.float() + self.synthesis.directions(alpha)).to(w.dtype)  # (B, style_dim)
        delta = None if alpha_source is None else alpha.float() - alpha_source.float()
        return self.synthesis(latent, feats, delta=delta)  # (B, 3, S, S)

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``driving`` from ``source``'s appearance and ``driving``'s motion (training objective)."""
        src = self.encoder(source)
        alpha = self.encoder(driving).alpha  # (B, motion_dim)
        return self.render(src.w, alpha, src.feats, src.alpha)

    @staticmethod
    def relative_alpha(alpha_source, alpha_driving, alpha_first):
        """Relative driving: the source's own code plus the driver's motion change since its first frame."""
        return alpha_source + (alpha_driving - alpha_first)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator with minibatch-stddev (group 4) and a 2-layer head."""

    def __init__(self, cfg: MotionConfig):
        super().__init__()
        log = int(math.log2(cfg.size))
        layers: list[nn.Module] = [ConvLayer(3, cfg.channels(cfg.size, True), 1)]
        for i in range(log, 2, -1):
            layers.append(ResBlock(cfg.channels(2 ** i, True), cfg.channels(2 ** (i - 1), True)))
        self.convs = nn.Sequential(*layers)
        c4 = cfg.channels(4, True)
        self.final_conv = ConvLayer(c4 + 1, c4, 3)
        self.final_linear = nn.Sequential(EqualLinear(c4 * 16, c4, activate=True), EqualLinear(c4, 1))
        self.stddev_group = 4

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        out = self.convs(img)  # (B, C4, 4, 4)
        b, c, h, w = out.shape
        g = min(b, self.stddev_group)
        while b % g:
            g -= 1
        std = out.float().view(g, -1, c, h, w).var(0, unbiased=False).add(1e-8).sqrt().mean((1, 2, 3))  # (B/g,)
        std = std.view(1, -1, 1, 1, 1).expand(g, -1, 1, h, w).reshape(b, 1, h, w).to(out.dtype)
        out = self.final_conv(torch.cat([out, std], 1))  # (B, C4, 4, 4)
        return self.final_linear(out.flatten(1))  # (B, 1)


# ----------------------------------------------------------------------------------------------------------------
# Sizes and FLOPs
# ----------------------------------------------------------------------------------------------------------------

def describe(cfg: MotionConfig) -> str:
    return f"{cfg.size} px, style {cfg.style_dim}, motion {cfg.motion_dim}"


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def param_table(cfg: MotionConfig) -> list[tuple[str, int]]:
    """Parameter count by module: generator parts, generator total, discriminator."""
    gen, disc = MotionGenerator(cfg), Discriminator(cfg)
    enc, syn = gen.encoder, gen.synthesis
    rows = [
        ("encoder.backbone (stem+resblocks+final)", count_params(enc.stem) + count_params(enc.blocks)
         + count_params(enc.final)),
        ("encoder.hal", count_params(enc.hal)),
        ("encoder.identity_head", count_params(enc.identity_head)),
        ("encoder.motion_head", count_params(enc.motion_head)),
        ("encoder.motion_fc", count_params(enc.motion_fc)),
        ("synthesis.directions", count_params(syn.directions)),
        ("synthesis.convs", syn.input.numel() + count_params(syn.conv1) + count_params(syn.up_convs)
         + count_params(syn.convs)),
        ("synthesis.to_flows", count_params(syn.to_flows)),
        ("synthesis.to_rgbs", count_params(syn.to_rgbs)),
        *([("synthesis.coarse", count_params(syn.coarse))] if syn.coarse is not None else []),
        ("generator total", count_params(gen)),
        ("discriminator", count_params(disc)),
    ]
    return rows
