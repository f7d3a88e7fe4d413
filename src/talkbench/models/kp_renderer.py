"""Keypoint-driven upper-body renderer (ChatAnyone §3.4, face-vid2vid / LivePortrait family; no public code).

    source image, source keypoints, driving keypoints, driving hand joints
      → face keypoints + learned implicit offsets (an MLP of the face motion moves the face keypoints)
      → sparse motion: one translation flow per keypoint (driving → source) plus the identity (background)
      → dense-motion net: softmax masks over the K + 1 flows and an occlusion map (FOMM, Siarohin et al. 2019)
      → generator: source features warped by the dense flow, times the occlusion map, with the rasterised
        hand-skeleton image of the driving hands encoded and concatenated in (pixel-aligned, standing in for the
        MANO renders) → image
      → face refinement: a second small net of the same encoder/decoder structure adds a residual inside a soft mask
        around the driving face keypoints.

Keypoints are (x, y) in [-1, 1] (grid_sample convention, x right, y down). Losses: L1, the pyramid perceptual loss of
``losses.py`` (VGG19 from the weights registry, or the named ``none-l1-pyramid`` fallback) and a non-saturating GAN
with a patch discriminator.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HAND_JOINTS = 21
# MediaPipe Hands topology: wrist 0; thumb 1-4, index 5-8, middle 9-12, ring 13-16, little 17-20.
HAND_BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
              (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20))


@dataclass(frozen=True)
class RendererConfig:
    size: tuple[int, int] = (768, 512)  # (H, W): 2:3 portrait
    face_points: int = 10  # face keypoints (the body_hands template's K, projected to the image)
    body_points: int = 9
    expr_dim: int = 52  # the implicit offsets are an MLP of the expression coefficients
    channels: int = 64  # first encoder width; doubles per down-sampling
    down: int = 3  # encoder down-samplings
    motion_channels: int = 32  # dense-motion net width
    motion_scale: float = 0.25  # the dense-motion net runs at this fraction of the image size
    hand_channels: int = 16  # width of the hand-skeleton encoder, injected into the generator's bottleneck
    face_refine: bool = True
    kp_sigma: float = 0.05  # Gaussian heat-map width in [-1, 1] units
    perceptual: str = "vgg19"  # vgg19 | none-l1-pyramid | vgg19-random (losses.PERCEPTUAL)
    gan_weight: float = 0.1
    hand_drop: float = 0.3  # training probability of a hands-off sample (no hand joints, no skeleton image)

    @property
    def points(self) -> int:
        return self.face_points + self.body_points + 2 * HAND_JOINTS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RendererConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if k == "size" else v) for k, v in d.items() if k in names})


PRESETS: dict[str, RendererConfig] = {
    "paper": RendererConfig(),
    "tiny": RendererConfig(size=(384, 256), expr_dim=16, channels=16, down=3, motion_channels=16, hand_channels=8,
                           perceptual="none-l1-pyramid"),
}


def get_config(preset: str) -> RendererConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown kp_renderer preset {preset!r}; choose from {sorted(PRESETS)}")
    return PRESETS[preset]


# ----------------------------------------------------------------------------------------------------------------
# Rasterisation and warping helpers
# ----------------------------------------------------------------------------------------------------------------

SKELETON_REACH = 6.0  # line half-widths: beyond this a bone's value exp(-d²/2w²) is below 1.6e-8, written as 0


def hand_skeleton(hands: torch.Tensor, size: tuple[int, int], width: float = 0.02) -> torch.Tensor:
    """(B, 2, 21, ≥2) joints in [-1, 1] → (B, 2, H, W) soft line images (one channel per hand), differentiable.
    A bone's pixel value is exp(−d²/2w²) of the distance d to the segment (w in [-1, 1] units), the max over bones.

    Only the pixels within ``SKELETON_REACH`` widths of the hand's joint box are computed (about a tenth of the
    frame for a hand; a folded hand, a few pixels): the same image to 1.6e-8, at a fraction of the cost, which
    dominated the CPU renderer's forward pass."""
    h, w = size
    b = hands.shape[0]
    pts = hands[..., :2].float()
    out = torch.zeros(b, 2, h, w, device=hands.device, dtype=pts.dtype)
    ys = torch.linspace(-1, 1, h, device=hands.device)
    xs = torch.linspace(-1, 1, w, device=hands.device)
    margin = SKELETON_REACH * width
    lo = (pts.detach().amin(2) - margin).cpu()  # (B, 2, 2): x, y
    hi = (pts.detach().amax(2) + margin).cpu()
    first, second = [i for i, _ in HAND_BONES], [j for _, j in HAND_BONES]

    def span(axis_values, low, high):
        step = 2 / max(len(axis_values) - 1, 1)
        start = max(0, int(math.floor((float(low) + 1) / step)))
        return start, min(len(axis_values), int(math.ceil((float(high) + 1) / step)) + 1)

    for n in range(b):
        for k in range(2):
            x0, x1 = span(xs, lo[n, k, 0], hi[n, k, 0])
            y0, y1 = span(ys, lo[n, k, 1], hi[n, k, 1])
            if x1 <= x0 or y1 <= y0:
                continue
            grid = torch.stack(torch.meshgrid(ys[y0:y1], xs[x0:x1], indexing="ij")[::-1], -1).reshape(1, -1, 2)
            a, ab = pts[n, k, first, None], pts[n, k, second, None] - pts[n, k, first, None]  # (nb, 1, 2)
            t = (((grid - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-8)).clamp(0, 1)  # (nb, n_pix)
            d2 = ((a + t[..., None] * ab - grid) ** 2).sum(-1)
            out[n, k, y0:y1, x0:x1] = torch.exp(-d2.min(0).values / (2 * width ** 2)).view(y1 - y0, x1 - x0)
    return out


def identity_grid(b: int, h: int, w: int, device) -> torch.Tensor:
    ys, xs = torch.linspace(-1, 1, h, device=device), torch.linspace(-1, 1, w, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1)[None].expand(b, h, w, 2)  # (B, H, W, 2)


def heatmaps(kp: torch.Tensor, h: int, w: int, sigma: float) -> torch.Tensor:
    """(B, K, 2) → (B, K, H, W) Gaussians."""
    grid = identity_grid(kp.shape[0], h, w, kp.device)[:, None]  # (B, 1, H, W, 2)
    return torch.exp(-((grid - kp[:, :, None, None, :2]) ** 2).sum(-1) / (2 * sigma ** 2))


def conv(cin, cout, k=3, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2), nn.GroupNorm(min(8, cout), cout), nn.SiLU())


class UNet(nn.Module):
    """A small encoder/decoder with skips: (B, cin, H, W) → (B, cout, H, W)."""

    def __init__(self, cin: int, cout: int, width: int, depth: int):
        super().__init__()
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.inp = conv(cin, chans[0])
        self.downs = nn.ModuleList([conv(chans[i], chans[i + 1], 3, 2) for i in range(depth)])
        self.ups = nn.ModuleList([conv(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth))])
        self.out = nn.Conv2d(chans[0], cout, 3, padding=1)

    def forward(self, x):
        skips = [self.inp(x)]
        for d in self.downs:
            skips.append(d(skips[-1]))
        h = skips.pop()
        for up in self.ups:
            s = skips.pop()
            h = up(torch.cat([F.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False), s], 1))
        return self.out(h)


# ----------------------------------------------------------------------------------------------------------------
# Renderer
# ----------------------------------------------------------------------------------------------------------------

class DenseMotion(nn.Module):
    """Sparse keypoint translations → softmax-weighted dense flow and an occlusion map (FOMM)."""

    def __init__(self, cfg: RendererConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.points + 1
        self.net = UNet(k * 4, k + 1, cfg.motion_channels, 3)

    def forward(self, image, kp_src, kp_drv, present):
        """image (B, 3, H, W), kp (B, K, 2), present (B, K) → flow grid (B, H, W, 2), occlusion (B, 1, H, W)."""
        b, _, hh, ww = image.shape
        h, w = max(8, int(hh * self.cfg.motion_scale)), max(8, int(ww * self.cfg.motion_scale))
        small = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False)
        grid = identity_grid(b, h, w, image.device)  # (B, h, w, 2)
        shift = (kp_src - kp_drv) * present[..., None]  # (B, K, 2): absent keypoints do not move anything
        flows = torch.cat([grid[:, None], grid[:, None] + shift[:, :, None, None]], 1)  # (B, K+1, h, w, 2)
        warped = F.grid_sample(small.repeat_interleave(flows.shape[1], 0), flows.flatten(0, 1), align_corners=True,
                               padding_mode="border").view(b, -1, h, w)  # (B, 3(K+1), h, w)
        heat = heatmaps(kp_drv, h, w, self.cfg.kp_sigma) - heatmaps(kp_src, h, w, self.cfg.kp_sigma)
        heat = torch.cat([torch.zeros_like(heat[:, :1]), heat * present[..., None, None]], 1)  # (B, K+1, h, w)
        out = self.net(torch.cat([warped, heat], 1))
        masks = torch.softmax(out[:, :-1], 1)  # (B, K+1, h, w)
        flow = (masks[..., None] * flows).sum(1)  # (B, h, w, 2)
        flow = F.interpolate(flow.permute(0, 3, 1, 2), size=(hh, ww), mode="bilinear",
                             align_corners=True).permute(0, 2, 3, 1)
        occ = torch.sigmoid(F.interpolate(out[:, -1:], size=(hh, ww), mode="bilinear", align_corners=False))
        return flow, occ


class KeypointRenderer(nn.Module):
    def __init__(self, cfg: RendererConfig):
        super().__init__()
        self.cfg = cfg
        c, n = cfg.channels, cfg.down
        self.implicit = nn.Sequential(nn.Linear(cfg.expr_dim, 64), nn.SiLU(), nn.Linear(64, cfg.face_points * 2))
        nn.init.zeros_(self.implicit[2].weight), nn.init.zeros_(self.implicit[2].bias)
        self.dense = DenseMotion(cfg)
        self.enc = nn.ModuleList([conv(3, c)] + [conv(c * 2 ** i, c * 2 ** (i + 1), 3, 2) for i in range(n)])
        self.hand_enc = nn.Sequential(conv(2, cfg.hand_channels), *[conv(cfg.hand_channels, cfg.hand_channels, 3, 2)
                                                                     for _ in range(n)])
        top = c * 2 ** n
        self.mid = nn.Sequential(conv(top + cfg.hand_channels, top), conv(top, top))
        self.dec = nn.ModuleList([conv(c * 2 ** (i + 1) + c * 2 ** i + 2, c * 2 ** i) for i in reversed(range(n))])
        self.to_rgb = nn.Conv2d(c, 3, 3, padding=1)
        self.refine = UNet(3 + 3 + 1, 3, max(8, c // 2), 2) if cfg.face_refine else None

    def keypoints(self, kp: torch.Tensor, expression: torch.Tensor | None) -> torch.Tensor:
        """Face keypoints (the first ``face_points``) move by the learned implicit offsets of the expression."""
        if expression is None:
            return kp
        off = self.implicit(expression.float()).view(-1, self.cfg.face_points, 2) * 0.1
        f = self.cfg.face_points
        return torch.cat([kp[:, :f] + off, kp[:, f:]], 1)

    def forward(self, source: torch.Tensor, kp_src: torch.Tensor, kp_drv: torch.Tensor, *,
                expr_src: torch.Tensor | None = None, expr_drv: torch.Tensor | None = None,
                hands_on: torch.Tensor | bool = True) -> dict[str, torch.Tensor]:
        """source (B, 3, H, W) in [-1, 1]; kp_src/kp_drv (B, P, 2) with P = face + body + 42 hand joints in that
        order; expr (B, E); hands_on (B,) bool or a bool. → image (B, 3, H, W), flow, occlusion, skeleton."""
        b, _, h, w = source.shape
        cfg = self.cfg
        hands_on = torch.as_tensor(hands_on, device=source.device).expand(b)
        present = torch.ones(b, cfg.points, device=source.device)
        present[:, cfg.face_points + cfg.body_points:] = hands_on[:, None].float()
        ks, kd = self.keypoints(kp_src, expr_src), self.keypoints(kp_drv, expr_drv)
        flow, occ = self.dense(source, ks, kd, present)
        hands = kd[:, cfg.face_points + cfg.body_points:].view(b, 2, HAND_JOINTS, 2)
        skel = hand_skeleton(hands, (h, w)) * hands_on[:, None, None, None].float()  # (B, 2, H, W)
        feats, x = [], source
        for layer in self.enc:
            x = layer(x)
            feats.append(x)
        warped = []
        for f in feats:
            g = F.interpolate(flow.permute(0, 3, 1, 2), size=f.shape[-2:], mode="bilinear",
                              align_corners=True).permute(0, 2, 3, 1)
            o = F.interpolate(occ, size=f.shape[-2:], mode="bilinear", align_corners=False)
            warped.append(F.grid_sample(f, g, align_corners=True, padding_mode="border") * o)
        hand_feat = self.hand_enc(skel)
        x = self.mid(torch.cat([warped[-1], F.interpolate(hand_feat, size=warped[-1].shape[-2:])], 1))
        for i, layer in enumerate(self.dec):
            skip = warped[-2 - i]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = layer(torch.cat([x, skip, F.interpolate(skel, size=skip.shape[-2:])], 1))
        img = torch.tanh(self.to_rgb(x))
        if self.refine is not None:
            face = kd[:, :cfg.face_points]
            mask = heatmaps(face, h, w, 4 * cfg.kp_sigma).amax(1, keepdim=True)  # (B, 1, H, W) around the face
            warped_src = F.grid_sample(source, flow, align_corners=True, padding_mode="border")
            img = (img + mask * self.refine(torch.cat([img, warped_src, mask], 1))).clamp(-1, 1)
        return {"image": img, "flow": flow, "occlusion": occ, "skeleton": skel}


class PatchDiscriminator(nn.Module):
    def __init__(self, width: int = 32, depth: int = 3):
        super().__init__()
        layers, c = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2)], width
        for _ in range(depth - 1):
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1), nn.GroupNorm(8, c * 2), nn.LeakyReLU(0.2)]
            c *= 2
        layers.append(nn.Conv2d(c, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def renderer_losses(model: KeypointRenderer, perceptual: nn.Module, disc: PatchDiscriminator | None, batch: dict,
                    hands_on: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Generator losses (L1 + perceptual + GAN·w) for batch {source, target (B, 3, H, W), kp_src, kp_drv,
    expr_src, expr_drv}; returns (losses, generated image)."""
    from .losses import g_nonsaturating

    out = model(batch["source"], batch["kp_src"], batch["kp_drv"], expr_src=batch.get("expr_src"),
                expr_drv=batch.get("expr_drv"), hands_on=hands_on)
    img, tgt = out["image"], batch["target"]
    losses = {"l1": (img.float() - tgt.float()).abs().mean(), "perceptual": perceptual(img, tgt)}
    if disc is not None and model.cfg.gan_weight > 0:
        losses["gan"] = g_nonsaturating(disc(img))
    losses["total"] = losses["l1"] + losses["perceptual"] + model.cfg.gan_weight * losses.get("gan", 0.0)
    return losses, img


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(cfg: RendererConfig) -> str:
    return (f"{cfg.size[1]}×{cfg.size[0]}, width {cfg.channels}, {cfg.down} down-samplings, {cfg.points} keypoints, "
            f"face refine {'on' if cfg.face_refine else 'off'}, perceptual {cfg.perceptual}")


def param_table(cfg: RendererConfig) -> list[tuple[str, int]]:
    """Parameter count by module and the total (``models summary avatar-render``; the discriminator apart)."""
    model = KeypointRenderer(cfg)
    rows = [(name, count_params(child)) for name, child in model.named_children()]
    return [r for r in rows if r[1]] + [("total", count_params(model)),
                                        ("discriminator (training only)", count_params(PatchDiscriminator()))]


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(frames, np.uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_frames(images: torch.Tensor) -> np.ndarray:
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
