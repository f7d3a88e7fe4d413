"""SyncNet (syncnet_python's ``S``) in the key layout of ``syncnet_v2.model``.

Audio tower: MFCC (N, 1, 13, 20) -> (N, 1024). Lip tower: BGR 0-255 floats (N, 3, 5, 224, 224) -> (N, 1024).
The official file predates BatchNorm's ``num_batches_tracked`` buffers, so those keys are optional.
"""

from __future__ import annotations

import torch
from torch import nn

from ... import weights


def _conv2(cin, cout, **kw):
    return [nn.Conv2d(cin, cout, **kw), nn.BatchNorm2d(cout), nn.ReLU()]


def _conv3(cin, cout, **kw):
    return [nn.Conv3d(cin, cout, **kw), nn.BatchNorm3d(cout), nn.ReLU()]


def _fc(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))


class SyncNet(nn.Module):
    def __init__(self, embed_dim: int = 1024):
        super().__init__()
        # Index positions matter: they are the keys of the official file (netcnnaud.0, .1, .4, .5, ...).
        self.netcnnaud = nn.Sequential(
            *_conv2(1, 64, kernel_size=3, padding=1), nn.MaxPool2d(1, 1),
            *_conv2(64, 192, kernel_size=3, padding=1), nn.MaxPool2d(3, stride=(1, 2)),
            *_conv2(192, 384, kernel_size=3, padding=1),
            *_conv2(384, 256, kernel_size=3, padding=1),
            *_conv2(256, 256, kernel_size=3, padding=1), nn.MaxPool2d(3, stride=2),
            *_conv2(256, 512, kernel_size=(5, 4)),
        )
        self.netfcaud = _fc(embed_dim)
        self.netfclip = _fc(embed_dim)
        self.netcnnlip = nn.Sequential(
            *_conv3(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2)), nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv3(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_conv3(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            *_conv3(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            *_conv3(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv3(256, 512, kernel_size=(1, 6, 6)),
        )

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))  # (N, 1, 13, 20) -> (N, 512) -> (N, 1024)

    def forward_lip(self, video: torch.Tensor) -> torch.Tensor:
        return self.netfclip(self.netcnnlip(video).flatten(1))  # (N, 3, 5, 224, 224) -> (N, 512) -> (N, 1024)


weights.register(weights.state_dict_entry(
    SyncNet, name="syncnet", filename="syncnet_v2.model",
    urls=("http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",),
    hash_kind="unpinned", sha256="", size=None, size_exact=False, licence="MIT (syncnet_python)",
    description="SyncNet v2 (Chung & Zisserman), LSE-C/LSE-D"))
