"""AlexNet and VGG in torchvision's key layout (``features.N.weight``, ``classifier.N.weight``), and their entries.

The ImageNet files (alexnet-owt-7be5be79.pth, vgg16-397923af.pth, vgg19-dcbb9e9d.pth) load unchanged. They live in
the weights layer because two packages use them: LPIPS (metrics) reads the ReLU outputs it needs through ``taps``,
and the perceptual loss (models) takes VGG19's ``features``. Classifier layers are kept so that key names and
parameter counts equal the official files'.
"""

from __future__ import annotations

import torch
from torch import nn

from .formats import state_dict_entry
from .registry import register

# Parameter counts of the official torchvision files (alexnet 61,100,840; vgg16 138,357,544; vgg19 143,667,240).
PARAM_COUNTS = {"alexnet": 61_100_840, "vgg16": 138_357_544, "vgg19": 143_667_240}

VGG_CONFIGS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


class AlexNet(nn.Module):
    # LPIPS taps: relu1..relu5 are features.1, .4, .7, .9, .11 (channels 64, 192, 384, 256, 256).
    taps = (1, 4, 7, 9, 11)
    tap_channels = (64, 192, 384, 256, 256)

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x)).flatten(1)  # (N, 9216)
        return self.classifier(x)  # (N, 1000)


def vgg_features(config: str = "vgg16") -> nn.Sequential:
    """The convolutional part of a torchvision VGG (``features.N`` indices as in torchvision), without the classifier."""
    if config not in VGG_CONFIGS:
        raise ValueError(f"unknown VGG configuration {config!r}; choose from {sorted(VGG_CONFIGS)}")
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG_CONFIGS[config]:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
            channels = item
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, config: str = "vgg16", num_classes: int = 1000):
        super().__init__()
        self.features = vgg_features(config)
        layers = list(self.features)
        relus = [i for i, m in enumerate(layers) if isinstance(m, nn.ReLU)]
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, num_classes),
        )
        # LPIPS taps: the last ReLU of each of the five stages (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 for VGG16).
        pools = [i for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
        self.taps = tuple(max(r for r in relus if r < p) for p in pools)
        self.tap_channels = (64, 128, 256, 512, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x)).flatten(1)  # (N, 25088)
        return self.classifier(x)


def tap_features(net: AlexNet | VGG, x: torch.Tensor) -> list[torch.Tensor]:
    """Run ``net.features`` only as far as the last tap and return the tapped activations."""
    outs = []
    last = net.taps[-1]
    for i, layer in enumerate(net.features):
        x = layer(x)
        if i in net.taps:
            outs.append(x)
        if i == last:
            break
    return outs


BACKBONES = {"alexnet": AlexNet, "vgg16": lambda: VGG("vgg16"), "vgg19": lambda: VGG("vgg19")}


def build_backbone(name: str) -> AlexNet | VGG:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
    return BACKBONES[name]()


# ----------------------------------------------------------------------------- weights entries

register(state_dict_entry(
    AlexNet, name="alexnet", filename="alexnet-owt-7be5be79.pth",
    urls=("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
    hash_kind="prefix", sha256="7be5be79", size=244_408_911, size_exact=False,
    licence="BSD-3-Clause (torchvision); ImageNet-trained",
    description="torchvision AlexNet ImageNet weights: LPIPS-alex backbone"))
register(state_dict_entry(
    BACKBONES["vgg16"], name="vgg16", filename="vgg16-397923af.pth",
    urls=("https://download.pytorch.org/models/vgg16-397923af.pth",),
    hash_kind="prefix", sha256="397923af", size=553_433_881, size_exact=False,
    licence="BSD-3-Clause (torchvision); ImageNet-trained (CC BY 4.0 VGG weights)",
    description="torchvision VGG16 ImageNet weights: LPIPS-vgg backbone"))
register(state_dict_entry(
    BACKBONES["vgg19"], name="vgg19", filename="vgg19-dcbb9e9d.pth",
    urls=("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",),
    hash_kind="prefix", sha256="dcbb9e9d", size=574_673_361, size_exact=False,
    licence="BSD-3-Clause (torchvision); ImageNet-trained (CC BY 4.0 VGG weights)",
    description="torchvision VGG19 ImageNet weights: perceptual losses of the reference models"))
