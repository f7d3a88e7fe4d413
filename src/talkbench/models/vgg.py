"""VGG19 feature extractor (torchvision key layout) for the pyramid perceptual loss.

The network is written here (torchvision is not a dependency): ``features.N.weight`` / ``features.N.bias`` for the
conv layers 0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, so a torchvision ``vgg19-dcbb9e9d.pth`` state dict loads
directly (the classifier and the unused conv5_2..5_4 keys are ignored). Taps are relu1_1, relu2_1, relu3_1, relu4_1,
relu5_1 as in FOMM / LIA's ``vgg19.py`` slices (indices 1, 6, 11, 20, 29).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import weights
from ..errors import WeightsError
from ..weights.backbones import vgg_features

TAPS = (1, 6, 11, 20, 29)  # relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    def __init__(self):
        super().__init__()
        # The weights layer's torchvision-layout VGG19, up to relu5_1: indices 0..29 as in vgg19().features[:30].
        self.features = vgg_features("vgg19")[:30]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x in [-1, 1], (B, 3, H, W) → the five relu taps."""
        x = ((x.clamp(-1, 1) + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = []
        for i, layer in enumerate(self.features):
            if isinstance(layer, nn.MaxPool2d) and min(x.shape[-2:]) < 2:
                break  # a small pyramid level (e.g. 8 px) has no deeper taps; the caller zips what exists
            x = layer(x)
            if i in TAPS:
                out.append(x)
        return out

    def load_torchvision(self, state: dict) -> "VGG19Features":
        """Load a torchvision vgg19 state dict (extra keys ignored; missing or misshapen ones refused)."""
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise WeightsError(f"vgg19 state dict lacks {len(missing)} keys, e.g. {missing[:3]} (expected torchvision layout)")
        for k, v in own.items():
            if tuple(state[k].shape) != tuple(v.shape):
                raise WeightsError(f"vgg19 key {k}: expected shape {tuple(v.shape)}, found {tuple(state[k].shape)}")
        self.load_state_dict({k: state[k] for k in own})
        return self


def load_vgg19() -> VGG19Features:
    """VGG19 with ImageNet weights from the weights registry entry ``vgg19`` (frozen, eval mode)."""
    net = VGG19Features().load_torchvision(weights.load_state_dict("vgg19"))
    return net.eval().requires_grad_(False)


def image_pyramid(x: torch.Tensor, scales: tuple[float, ...]) -> list[torch.Tensor]:
    """Down-scaled copies of x; each halving is a 2×2 box filter (anti-aliased, as FOMM's pyramid intends)."""
    out, cur, cur_scale = [], x, 1.0
    for s in sorted(scales, reverse=True):
        while cur_scale > s + 1e-9:
            cur = F.avg_pool2d(cur, 2)
            cur_scale /= 2
        out.append(cur)
    return out
