"""FID Inception and LPIPS against reference forward passes written here, the way test_pixel checks against skimage.

Each reference is a plain functional pass over a state dict in the official key layout
(``pt_inception-2015-12-05-6726825d.pth``; torchvision's ``alexnet``/``vgg16`` plus lpips' ``v0.1`` heads), written
from the published layer definitions: torchvision's Inception3 blocks with pytorch-fid's FID patches (average pools
that exclude padding in blocks A, C and E_1, a max pool in E_2, bilinear resize to 299 and 2x-1), and lpips v0.1
(scaling layer, channel unit-normalisation, squared difference, 1x1 heads, spatial mean, sum over the five taps).
They share no code with talkbench's networks, so CI checks the numerics without torchvision. Weights are random
(seeded), drawn with He scale so activations stay O(1) through the whole depth.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from talkbench.metrics.lpips import LPIPSNet
from talkbench.metrics.nets.inception import FIDInceptionV3

# ----------------------------------------------------------------------------------------------------------------
# FID Inception-v3 reference
# ----------------------------------------------------------------------------------------------------------------

# Convolutions that are not "stride 1, same padding" in torchvision's Inception3: name → (stride, padding).
VALID_CONVS = {
    "Conv2d_1a_3x3": (2, 0), "Conv2d_2a_3x3": (1, 0), "Conv2d_4a_3x3": (1, 0),
    "Mixed_6a.branch3x3": (2, 0), "Mixed_6a.branch3x3dbl_3": (2, 0),
    "Mixed_7a.branch3x3_2": (2, 0), "Mixed_7a.branch7x7x3_4": (2, 0),
}
# Blocks in order with their kind (torchvision's InceptionA..E; pytorch-fid swaps in FIDInceptionA/C/E_1/E_2).
BLOCKS = [("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"), ("Mixed_6b", "C"),
          ("Mixed_6c", "C"), ("Mixed_6d", "C"), ("Mixed_6e", "C"), ("Mixed_7a", "D"), ("Mixed_7b", "E_1"),
          ("Mixed_7c", "E_2")]


def basic_conv(state: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    """BasicConv2d: conv (no bias) → BatchNorm (eps 0.001, running statistics) → ReLU."""
    w = state[f"{name}.conv.weight"]
    stride, padding = VALID_CONVS.get(name, (1, None))
    if padding is None:
        padding = (w.shape[2] // 2, w.shape[3] // 2)
    y = F.conv2d(x, w, stride=stride, padding=padding)
    mean, var = state[f"{name}.bn.running_mean"], state[f"{name}.bn.running_var"]
    gamma, beta = state[f"{name}.bn.weight"], state[f"{name}.bn.bias"]
    y = (y - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 0.001) * gamma[:, None, None] + beta[:, None, None]
    return y.clamp_min(0)


def chain(state, block, names, x):
    for n in names:
        x = basic_conv(state, f"{block}.{n}", x)
    return x


def avg_pool_no_pad(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def inception_block(state, block, kind, x):
    c = lambda *names: chain(state, block, names, x)  # noqa: E731 - a branch from the block input
    if kind == "A":
        return torch.cat([c("branch1x1"), c("branch5x5_1", "branch5x5_2"),
                          c("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
                          chain(state, block, ["branch_pool"], avg_pool_no_pad(x))], 1)
    if kind == "B":
        return torch.cat([c("branch3x3"), c("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
                          F.max_pool2d(x, 3, stride=2)], 1)
    if kind == "C":
        return torch.cat([c("branch1x1"), c("branch7x7_1", "branch7x7_2", "branch7x7_3"),
                          c("branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5"),
                          chain(state, block, ["branch_pool"], avg_pool_no_pad(x))], 1)
    if kind == "D":
        return torch.cat([c("branch3x3_1", "branch3x3_2"),
                          c("branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"),
                          F.max_pool2d(x, 3, stride=2)], 1)
    # E_1 / E_2: split 1x3 / 3x1 branches; E_1 pools with an average that excludes padding, E_2 with a max.
    b3 = c("branch3x3_1")
    b3 = torch.cat([chain(state, block, ["branch3x3_2a"], b3), chain(state, block, ["branch3x3_2b"], b3)], 1)
    bd = c("branch3x3dbl_1", "branch3x3dbl_2")
    bd = torch.cat([chain(state, block, ["branch3x3dbl_3a"], bd), chain(state, block, ["branch3x3dbl_3b"], bd)], 1)
    pooled = avg_pool_no_pad(x) if kind == "E_1" else F.max_pool2d(x, 3, stride=1, padding=1)
    return torch.cat([c("branch1x1"), b3, bd, chain(state, block, ["branch_pool"], pooled)], 1)


def reference_fid_features(state: dict, x: torch.Tensor) -> torch.Tensor:
    """pytorch-fid's InceptionV3([pool3], resize_input=True, normalize_input=True, use_fid_inception=True)."""
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
        x = basic_conv(state, name, x)
    x = F.max_pool2d(x, 3, stride=2)
    for name in ("Conv2d_3b_1x1", "Conv2d_4a_3x3"):
        x = basic_conv(state, name, x)
    x = F.max_pool2d(x, 3, stride=2)
    for block, kind in BLOCKS:
        x = inception_block(state, block, kind, x)
    return x.mean(dim=(2, 3))  # adaptive average pool to 1x1 → (N, 2048)


def random_official_state(keys_shapes: dict, seed: int) -> dict:
    """Random tensors for every key: He-scaled weights, BN statistics near identity."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in keys_shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith(("running_mean", ".bias")):
            state[key] = 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("bn.weight"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
    return state


# The key layout of the official file, written out (a subset is enough to catch a renamed or reshaped layer; the
# reference pass above reads every other key by its official name and fails with KeyError if one is missing).
OFFICIAL_INCEPTION_KEYS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6b.branch7x7dbl_2.conv.weight": (128, 128, 7, 1),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "fc.weight": (1008, 2048),
}


@pytest.fixture(scope="module")
def fid_pair():
    ours = FIDInceptionV3().eval()
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    for key, shape in OFFICIAL_INCEPTION_KEYS.items():
        assert shapes[key] == shape, key
    state = random_official_state(shapes, seed=5)
    ours.load_state_dict(state, strict=True)
    return ours, state


def test_fid_inception_matches_the_reference_pass(fid_pair):
    ours, state = fid_pair
    x = torch.rand(1, 3, 75, 90, generator=torch.Generator().manual_seed(1))  # any size: resized to 299
    with torch.no_grad():
        expected = reference_fid_features(state, x)
        got = ours(x)
    assert got.shape == (1, 2048)
    scale = float(expected.abs().mean())
    assert scale > 1e-2  # activations did not die on the way through the 94 convolutions
    assert float((got - expected).abs().max()) < 1e-4 * max(1.0, scale), float((got - expected).abs().max())


@pytest.mark.parametrize("block, kind, channels", [("Mixed_5b", "A", 192), ("Mixed_6b", "C", 768),
                                                   ("Mixed_7b", "E_1", 1280), ("Mixed_7c", "E_2", 2048)])
def test_each_patched_block_matches_and_the_unpatched_pool_does_not(fid_pair, block, kind, channels):
    """Block by block on small inputs; and the comparison can fail: torchvision's unpatched pooling (an average that
    counts padded cells, in every block) moves the output by far more than the tolerance."""
    global avg_pool_no_pad
    ours, state = fid_pair
    x = torch.rand(1, channels, 9, 9, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = getattr(ours, block)(x)
        expected = inception_block(state, block, kind, x)
        original = avg_pool_no_pad
        try:
            avg_pool_no_pad = lambda t: F.avg_pool2d(t, 3, stride=1, padding=1)  # noqa: E731 - counts padding
            unpatched = inception_block(state, block, "E_1" if kind == "E_2" else kind, x)
        finally:
            avg_pool_no_pad = original
    scale = float(expected.abs().mean())
    assert float((got - expected).abs().max()) < 1e-4 * max(1.0, scale)
    assert float((got - unpatched).abs().max()) > 1e-2 * scale


# ----------------------------------------------------------------------------------------------------------------
# LPIPS v0.1 reference
# ----------------------------------------------------------------------------------------------------------------

# torchvision's feature stacks as (conv index, stride, padding) and max pools ("M") at their indices; lpips
# takes the ReLU after the listed convs (alex: relu1..relu5; vgg16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
ALEX = {"layers": [(0, 4, 2), "M", (3, 1, 2), "M", (6, 1, 1), (8, 1, 1), (10, 1, 1)], "taps": (0, 3, 6, 8, 10)}
VGG16 = {"layers": [(0, 1, 1), (2, 1, 1), "M", (5, 1, 1), (7, 1, 1), "M", (10, 1, 1), (12, 1, 1), (14, 1, 1), "M",
                    (17, 1, 1), (19, 1, 1), (21, 1, 1), "M", (24, 1, 1), (26, 1, 1), (28, 1, 1)],
         "taps": (2, 7, 14, 21, 28)}
SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)


def reference_lpips(backbone: dict, heads: dict, spec: dict, pool, x0, x1) -> torch.Tensor:
    """lpips.LPIPS(net=..., version="0.1", lpips=True, spatial=False) in eval mode → (N,)."""
    def taps(x):
        out = []
        x = (x - SHIFT) / SCALE
        for layer in spec["layers"]:
            if layer == "M":
                x = pool(x)
                continue
            index, stride, padding = layer
            x = F.relu(F.conv2d(x, backbone[f"features.{index}.weight"], backbone[f"features.{index}.bias"],
                                stride=stride, padding=padding))
            if index in spec["taps"]:
                out.append(x)
        return out

    total = 0
    for k, (f0, f1) in enumerate(zip(taps(x0), taps(x1))):
        n0 = f0 / (torch.sqrt(torch.sum(f0 ** 2, dim=1, keepdim=True)) + 1e-10)
        n1 = f1 / (torch.sqrt(torch.sum(f1 ** 2, dim=1, keepdim=True)) + 1e-10)
        d = F.conv2d((n0 - n1) ** 2, heads[f"lin{k}.model.1.weight"])  # dropout is inactive in eval
        total = total + d.mean(dim=(2, 3), keepdim=True)
    return total.flatten()


@pytest.mark.parametrize("net, spec, pool, size", [
    ("alex", ALEX, lambda x: F.max_pool2d(x, 3, stride=2), 64),
    ("vgg", VGG16, lambda x: F.max_pool2d(x, 2, stride=2), 48),
])
def test_lpips_matches_the_reference_formula(net, spec, pool, size):
    model = LPIPSNet(net)
    shapes = {f"features.{k}": tuple(v.shape) for k, v in model.backbone.features.state_dict().items()}
    backbone = random_official_state(shapes, seed=7)
    g = torch.Generator().manual_seed(8)
    channels = [backbone[f"features.{i}.weight"].shape[0] for i in spec["taps"]]
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) / c for k, c in enumerate(channels)}
    model.load_weights(backbone, heads)
    x0 = torch.rand(3, 3, size, size, generator=g) * 2 - 1
    x1 = (x0 + 0.3 * torch.randn(3, 3, size, size, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        expected = reference_lpips(backbone, heads, spec, pool, x0, x1)
        got = model(x0, x1)
        same = model(x0, x0)
    assert got.shape == (3,) and float(expected.min()) > 1e-4
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-7), (got, expected)
    assert torch.all(same.abs() < 1e-7)
    # The comparison can fail: one head off by a factor of two moves the distance well past the tolerance.
    doubled = {**heads, "lin4.model.1.weight": heads["lin4.model.1.weight"] * 2}
    assert not torch.allclose(reference_lpips(backbone, doubled, spec, pool, x0, x1), got, rtol=1e-3)
