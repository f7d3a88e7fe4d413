"""Architectures written here against the official files' key layouts and parameter counts.

Counts: torchvision's published figures (AlexNet 61,100,840; VGG16 138,357,544; VGG19 143,667,240). FID
Inception: torchvision's inception_v3 (27,161,264) less its aux head (3,326,696) plus 8 extra fc classes = 23,850,960,
and SyncNet from syncnet_python's S. The parity test against torchvision / pytorch-fid / lpips runs where those
import (the GPU machine) and is skipped here with the reason.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from talkbench import weights
from talkbench.metrics.nets import inception, syncnet
from talkbench.weights import backbones


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta(builder):
    with torch.device("meta"):
        return builder()


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "vgg19"])
def test_backbone_counts_and_keys(name):
    net = meta(lambda: backbones.build_backbone(name))
    assert n_params(net) == backbones.PARAM_COUNTS[name]
    keys = list(net.state_dict())
    assert keys[0] == "features.0.weight" and keys[-1] == "classifier.6.bias"
    conv_idx = sorted({int(k.split(".")[1]) for k in keys if k.startswith("features.")})
    expected = {"alexnet": [0, 3, 6, 8, 10], "vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
                "vgg19": [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]}[name]
    assert conv_idx == expected
    assert net.state_dict()["classifier.6.weight"].shape == (1000, 4096)


def test_fid_inception_layout():
    net = meta(inception.FIDInceptionV3)
    state = net.state_dict()
    assert n_params(net) == inception.PARAM_COUNT == 23_850_960
    assert state["fc.weight"].shape == (1008, 2048)
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert state["Mixed_6e.branch7x7_1.conv.weight"].shape == (192, 768, 1, 1)
    assert not any(k.startswith("AuxLogits") for k in state)
    assert all(not k.endswith(".conv.bias") for k in state)  # BasicConv2d has no conv bias
    assert all(m.eps == 1e-3 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert len([k for k in state if not k.endswith("num_batches_tracked")]) == 472


def test_fid_inception_features_shape_and_resize():
    net = inception.FIDInceptionV3().eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 64, 80))
    assert out.shape == (2, 2048) and torch.all(out >= 0)  # post-ReLU average pool


def test_syncnet_layout():
    net = meta(syncnet.SyncNet)
    state = net.state_dict()
    assert n_params(net) == 13_631_616
    assert state["netcnnaud.0.weight"].shape == (64, 1, 3, 3)
    assert state["netcnnaud.18.weight"].shape == (512, 256, 5, 4)
    assert state["netcnnlip.0.weight"].shape == (96, 3, 5, 7, 7)
    assert state["netcnnlip.18.weight"].shape == (512, 256, 1, 6, 6)
    assert state["netfcaud.3.weight"].shape == state["netfclip.3.weight"].shape == (1024, 512)
    required, optional = weights.expected_state_dict("syncnet")
    assert all(k.endswith("num_batches_tracked") for k in optional) and len(optional) == 14


def test_syncnet_window_shapes():
    net = syncnet.SyncNet().eval()
    with torch.no_grad():
        assert net.forward_aud(torch.randn(3, 1, 13, 20)).shape == (3, 1024)
        assert net.forward_lip(torch.rand(2, 3, 5, 224, 224) * 255).shape == (2, 1024)




def _torchvision_importable() -> str | None:
    try:
        importlib.import_module("torchvision")  # only where it works (the GPU image); never on the CPU machines
    except Exception as exc:  # noqa: BLE001 - torchvision is broken on the CPU machines
        return f"torchvision is not importable here ({type(exc).__name__}: {str(exc)[:80]})"
    return None


@pytest.mark.slow
def test_parity_with_torchvision_inception_and_lpips():
    reason = _torchvision_importable()
    if reason:
        pytest.skip(reason)
    tv_models = importlib.import_module("torchvision.models")
    alexnet, inception_v3 = tv_models.alexnet, tv_models.inception_v3

    ref = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    ours = inception.FIDInceptionV3()
    assert n_params(ref) == n_params(ours)
    assert list(ref.state_dict()) == list(ours.state_dict())
    ref_alex = alexnet(weights=None)
    assert list(ref_alex.state_dict()) == list(backbones.AlexNet().state_dict())


@pytest.mark.slow
def test_fid_features_match_pytorch_fid_on_same_random_weights():
    reason = _torchvision_importable()
    if reason or importlib.util.find_spec("pytorch_fid") is None:
        pytest.skip(reason or "pytorch-fid is not installed")
    import pytorch_fid.inception as pfi

    from talkbench.metrics import random_weights

    state = random_weights.random_state_dict("fid-inception", seed=3)
    pfi.load_state_dict_from_url = lambda *a, **k: state  # offline: hand pytorch-fid the same random file
    ref = pfi.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval()
    ours = inception.FIDInceptionV3().eval()
    ours.load_state_dict(state, strict=False)
    x = torch.rand(3, 3, 96, 128)
    with torch.no_grad():
        a = ref(x)[0].flatten(1)
        b = ours(x)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), float((a - b).abs().max())


@pytest.mark.slow
def test_lpips_matches_lpips_package_on_same_weights():
    reason = _torchvision_importable()
    if reason or importlib.util.find_spec("lpips") is None:
        pytest.skip(reason or "lpips is not installed")
    import lpips as lpips_pkg

    from talkbench.metrics.lpips import LPIPSNet

    torch.manual_seed(0)
    ref = lpips_pkg.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()  # random backbone, official v0.1 heads
    backbone = {}
    for k in range(1, 6):
        for name, tensor in getattr(ref.net, f"slice{k}").state_dict().items():
            backbone[f"features.{name}"] = tensor
    heads = {f"lin{k}.model.1.weight": getattr(ref, f"lin{k}").model[1].weight.detach() for k in range(5)}
    ours = LPIPSNet("alex")
    ours.load_weights(backbone, heads)
    x, y = torch.rand(4, 3, 64, 64) * 2 - 1, torch.rand(4, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        a = ref(x, y).flatten()
        b = ours(x, y)
    assert torch.allclose(a, b, atol=1e-5), float((a - b).abs().max())
