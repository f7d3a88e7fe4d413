"""Every metric module follows its device: states, buffers, parameters and inputs (issue 11, point 14).

No GPU here, so the checks move things to PyTorch's ``meta`` device: a tensor left behind shows up as a device
mismatch (the CUDA crash "Expected all tensors to be on the same device ... cuda:0 and cpu") or in the list of
tensors that are not on meta. The CUDA results themselves are compared with the CPU ones in test_cuda_parity.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchmetrics import Metric

from talkbench.metrics.evaluate import Evaluator


def off_device(module: nn.Module, device: str) -> list[str]:
    """Names of every tensor a module holds (parameters, buffers, Metric states, plain tensor attributes of any
    submodule) that is not on ``device``."""
    bad = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.device.type != device]
    for prefix, sub in module.named_modules():
        for name, value in vars(sub).items():
            if isinstance(value, torch.Tensor) and value.device.type != device:
                bad.append(f"{prefix}.{name}" if prefix else name)
        if isinstance(sub, Metric):
            for name in sub._defaults:
                value = getattr(sub, name)
                if isinstance(value, torch.Tensor) and value.device.type != device:
                    bad.append(f"{prefix}.{name}" if prefix else name)
    return sorted(set(bad))


class Pool2048(nn.Module):
    """A stand-in feature extractor with real parameters: (N, 3, H, W) -> (N, 2048)."""

    def __init__(self, dim: int = 2048):
        super().__init__()
        self.proj = nn.Linear(3, dim)

    def forward(self, x, **_):
        return self.proj(x.mean(dim=tuple(range(2, x.ndim))))


def frames(n=16, size=32):
    from skimage.data import astronaut

    img = torch.from_numpy(astronaut()[::16, ::16][:size, :size].copy())
    return np.stack([np.roll(img.numpy(), i, axis=1) for i in range(n)]).astype(np.uint8)


def test_set_level_metrics_keep_their_states_on_the_evaluator_device():
    """The FID crash: FrechetSet moved only the extractor, so the float64 sums stayed on the CPU."""
    nets = {"fid": Pool2048(), "fvd": Pool2048(400)}
    ev = Evaluator(metrics=["fid", "fvd"], device="meta", networks=nets)
    video = frames()
    ev.add_video("clip", video, gt=video)  # raised "Expected all tensors to be on the same device" before the fix
    for metric in ("fid", "fvd"):
        acc = ev._sets[metric]
        assert off_device(acc.m, "meta") == [], metric
        assert acc.m.real_sum.device.type == "meta" and acc.m.fake_n.device.type == "meta"


def test_evaluator_to_moves_every_network_and_accumulator():
    ev = Evaluator(metrics=["fid"], device="cpu", networks={"fid": Pool2048(), "lpips": Pool2048(8)})
    video = frames()
    ev.add_video("clip", video, gt=video)
    assert ev._sets["fid"].m.real_n.item() == 16  # features really accumulated on the CPU
    ev.to("meta")
    assert ev.device == "meta"
    for key, net in ev._nets.items():
        assert off_device(net, "meta") == [], key
    assert off_device(ev._sets["fid"].m, "meta") == []
    ev.add_video("clip2", video, gt=video)  # later inputs follow the evaluator to its new device


@pytest.mark.parametrize("name", ["PSNR", "SSIM", "LPIPS", "FID", "CleanFID", "FVD", "SyncScores", "CSIM", "AED",
                                  "HKC", "Diversity", "AKD"])
def test_every_metric_class_carries_its_states_and_networks(name):
    from talkbench.metrics import frechet, lpips, pixel, video_metrics

    class Layers(nn.Module):  # clean-fid's TorchScript module exposes ``layers``
        def __init__(self):
            super().__init__()
            self.layers = Pool2048()

    builders = {
        "PSNR": lambda: pixel.PSNR(cap=60.0), "SSIM": pixel.SSIM,
        "LPIPS": lambda: lpips.LPIPS(net=Pool2048(1)),
        "FID": lambda: frechet.FID(extractor=Pool2048()), "CleanFID": lambda: frechet.CleanFID(extractor=Layers()),
        "FVD": lambda: frechet.FVD(extractor=Pool2048(400)),
        "SyncScores": lambda: video_metrics.SyncScores(net=Pool2048(8)),
        # ArcFace and the detector run in onnxruntime: nothing of theirs lives on a torch device
        "CSIM": lambda: video_metrics.CSIM(None, None), "AED": lambda: video_metrics.AED(None, None),
    }
    cls = getattr(video_metrics, name, None)
    metric = builders[name]() if name in builders else cls()
    states = [n for n in metric._defaults]
    assert states, f"{name} declares no states"
    assert off_device(metric, "cpu") == []
    moved = metric.to("meta")
    assert off_device(moved, "meta") == [], name
    assert str(moved.device) == "meta"
