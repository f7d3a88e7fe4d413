"""LPIPS v0.1 (Zhang et al. 2018): backbone taps, unit-normalised, squared difference, 1x1 heads, spatial mean, sum.

Inputs are RGB in [-1, 1]; anything outside that range is refused, because feeding [0, 1] images silently gives
different numbers. The backbone is torchvision-format AlexNet (default) or VGG16 (``talkbench.weights.backbones``);
the heads are lpips' v0.1 files, whose ``lpips-alex`` / ``lpips-vgg`` entries this module registers (layout: ``LPIPSHeads``).
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import Metric

from .. import weights
from ..errors import ConfigError
from ..weights.backbones import build_backbone, tap_features

LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
BACKBONE_ENTRY = {"alex": "alexnet", "vgg": "vgg16"}
# The scaling layer maps [-1, 1] inputs to the ImageNet statistics the backbone was trained on.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class LPIPSHeads(nn.Module):
    """The 1x1 linear heads in the key layout of lpips' files: ``lin{k}.model.1.weight`` (Sequential(Dropout, Conv))."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        for k, c in enumerate(channels):
            lin = nn.Module()
            lin.model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
            self.add_module(f"lin{k}", lin)

    def __getitem__(self, k: int) -> nn.Sequential:
        return getattr(self, f"lin{k}").model

    def __len__(self) -> int:
        return len(self._modules)


class LPIPSNet(nn.Module):
    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in LPIPS_CHANNELS:
            raise ValueError(f"unknown LPIPS backbone {net!r}; choose from {sorted(LPIPS_CHANNELS)}")
        self.net_name = net
        self.backbone = build_backbone(BACKBONE_ENTRY[net])
        self.backbone.classifier = nn.Identity()  # heads only use the convolutional taps
        self.heads = LPIPSHeads(LPIPS_CHANNELS[net])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    @classmethod
    def from_registry(cls, net: str = "alex") -> "LPIPSNet":
        model = cls(net)
        model.load_weights(weights.load_state_dict(BACKBONE_ENTRY[net]), weights.load_state_dict(f"lpips-{net}"))
        return model

    def load_weights(self, backbone_state: dict, heads_state: dict) -> None:
        feats = {k: v for k, v in backbone_state.items() if k.startswith("features.")}
        self.backbone.features.load_state_dict({k[len("features."):]: v for k, v in feats.items()})
        self.heads.load_state_dict(heads_state)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """x0, x1: (N, 3, H, W) in [-1, 1] -> (N,) distances."""
        for x in (x0, x1):
            lo, hi = float(x.min()), float(x.max())
            if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
                raise ConfigError(f"LPIPS expects inputs in [-1, 1], found values in [{lo:.3f}, {hi:.3f}]")
        n = x0.shape[0]
        both = torch.cat([x0, x1]).to(self.shift.dtype)  # one backbone pass for both images
        feats = tap_features(self.backbone, (both - self.shift) / self.scale)
        total = torch.zeros(n, device=x0.device, dtype=both.dtype)
        for k, f in enumerate(feats):
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # unit-normalise channels
            d = (f[:n] - f[n:]).pow(2)  # (N, C, h, w)
            total = total + self.heads[k](d).mean(dim=(1, 2, 3))
        return total


def uint8_to_lpips_input(frames: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return frames.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def lpips(pred: torch.Tensor, target: torch.Tensor, net: LPIPSNet) -> torch.Tensor:
    """Functional core: per-pair LPIPS of [-1, 1] images (N, 3, H, W)."""
    with torch.no_grad():
        return net(pred, target)


class LPIPS(Metric):
    higher_is_better = False
    is_differentiable = False
    full_state_update = False

    def __init__(self, net: LPIPSNet | None = None, net_type: str = "alex", **kwargs):
        super().__init__(**kwargs)
        self.net = net if net is not None else LPIPSNet.from_registry(net_type)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        values = lpips(pred, target, self.net)
        self.total += values.double().sum()
        self.count += values.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count


for _net, _sha, _size in (("alex", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", 6009),
                          ("vgg", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", 7289)):
    weights.register(weights.state_dict_entry(
        lambda _c=LPIPS_CHANNELS[_net]: LPIPSHeads(_c), name=f"lpips-{_net}", filename=f"lpips-v0.1-{_net}.pth",
        urls=(f"https://github.com/richzhang/PerceptualSimilarity/raw/v0.1/lpips/weights/v0.1/{_net}.pth",),
        hash_kind="sha256", sha256=_sha, size=_size, size_exact=True, licence="BSD-2-Clause (lpips)",
        description=f"LPIPS v0.1 linear heads for {BACKBONE_ENTRY[_net]} (lin0..lin4)",
        local_sources=(f"torchmetrics:functional/image/lpips_models/{_net}.pth",)))
