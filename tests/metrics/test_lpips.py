"""LPIPS v0.1 with the official heads (installed offline from torchmetrics) and a random-weight backbone."""

from __future__ import annotations

import pickle

import pytest
import torch
from skimage import data

from talkbench.errors import ConfigError
from talkbench import weights
from talkbench.metrics.lpips import LPIPS, LPIPSNet, uint8_to_lpips_input


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    model = LPIPSNet("alex")  # random backbone; heads are the official v0.1 file
    path = weights.local_source("torchmetrics:functional/image/lpips_models/alex.pth")
    heads = torch.load(path, map_location="cpu", weights_only=True)
    model.load_weights({f"features.{k}": v for k, v in model.backbone.features.state_dict().items()}, heads)
    return model


def frames():
    img = torch.from_numpy(data.astronaut()[:64, 200:264].copy())
    return torch.stack([img, img.roll(3, 0), img.flip(1)])


def test_identity_is_zero_and_distances_positive(net):
    x = uint8_to_lpips_input(frames())
    assert torch.allclose(net(x, x), torch.zeros(3), atol=1e-7)
    d = net(x, x.roll(1, 0))
    assert torch.all(d > 0)
    assert torch.allclose(d, net(x.roll(1, 0), x), atol=1e-6)  # symmetric


def test_range_is_enforced(net):
    x = frames().permute(0, 3, 1, 2).float() / 255.0
    with pytest.raises(ConfigError, match=r"\[-1, 1\]"):
        net(x * 2, x)  # values up to 2
    net(x, x)  # [0, 1] is inside [-1, 1]: accepted, scaling is the caller's job


def test_official_heads_are_used(net):
    heads = weights.local_source("torchmetrics:functional/image/lpips_models/alex.pth")
    official = torch.load(heads, map_location="cpu", weights_only=True)
    assert torch.equal(net.heads[2][1].weight, official["lin2.model.1.weight"])


def test_metric_streaming_and_pickle(net):
    x = uint8_to_lpips_input(frames())
    y = x.flip(0)
    whole, chunked = LPIPS(net=net), LPIPS(net=net)
    whole.update(x, y)
    chunked.update(x[:1], y[:1])
    chunked.update(x[1:], y[1:])
    assert float(whole.compute()) == pytest.approx(float(chunked.compute()), rel=1e-6)
    clone = pickle.loads(pickle.dumps(whole))
    assert float(clone.compute()) == pytest.approx(float(whole.compute()), rel=1e-9)
    assert LPIPS.higher_is_better is False


def test_from_registry_needs_the_backbone(home):
    weights.fetch("lpips-alex")
    from talkbench.errors import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="alexnet"):
        LPIPSNet.from_registry("alex")
