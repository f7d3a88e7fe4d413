"""Networks of the motion model: sizes, shapes, the QR basis, modulated-conv numerics, VGG key layout, losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from talkbench.errors import ConfigError, WeightsError
from talkbench.models import layers
from talkbench.models.losses import CLUB, AAMSoftmax, PyramidPerceptualLoss, triplet_loss
from talkbench.models.motion import (PRESETS, Discriminator, MotionConfig, MotionGenerator, count_params, get_config,
                                     param_table)
from talkbench.models.vgg import VGG19Features


def test_base_sizes_match_anitalker_lia():
    rows = dict(param_table(PRESETS["base"]))
    assert abs(rows["generator total"] - 47e6) / 47e6 < 0.05, rows["generator total"]
    assert abs(rows["discriminator"] - 24e6) / 24e6 < 0.05, rows["discriminator"]
    parts = sum(v for k, v in rows.items() if k not in ("generator total", "discriminator"))
    assert parts == rows["generator total"]  # the per-module table accounts for every parameter


def test_tiny_is_small_and_presets_are_a_registry():
    rows = dict(param_table(PRESETS["tiny"]))
    assert 2e5 < rows["generator total"] < 1e6
    assert rows["discriminator"] < 2e5
    with pytest.raises(ValueError, match=r"unknown preset 'huge'; choose from \['base', 'tiny', 'tiny-lips', "
                                         r"'tiny-mouth', 'tiny-turn'\]"):
        get_config("huge")
    with pytest.raises(ValueError, match="power of two"):
        MotionConfig(size=100)


def test_tiny_shapes_and_relative_driving():
    torch.manual_seed(0)
    cfg = PRESETS["tiny"]
    gen = MotionGenerator(cfg).eval()
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        enc = gen.encoder(x)
        assert enc.w.shape == enc.identity.shape == enc.motion.shape == (3, cfg.style_dim)
        assert enc.alpha.shape == (3, 20)
        assert [f.shape[-1] for f in enc.feats] == [8, 16, 32, 64, 64]
        assert [f.shape[1] for f in enc.feats] == [cfg.channels(r) for r in (8, 16, 32, 64)] + [3]
        assert torch.equal(enc.feats[-1], x)  # the source image itself, which the renderer warps
        out = gen(x, x.flip(0))
        assert out.shape == (3, 3, 64, 64)
        # relative driving with the driver's first frame equal to the current one gives the source's own code
        rel = MotionGenerator.relative_alpha(enc.alpha[:1], enc.alpha[1:2], enc.alpha[1:2])
        assert torch.equal(rel, enc.alpha[:1])
        # the HAL weights are a softmax over every stage: stem, one per resblock (64→4 px: 4), final conv
        assert gen.encoder.hal.logits.numel() == 1 + 4 + 1


def test_coarse_flow_is_static_at_init_and_follows_the_code_change():
    """tiny-turn's coarse flow: zero at init (the untrained renderer returns the source), zero when the driver's code
    equals the source's, linear in the change, and moving the image once trained; without the source code it
    refuses."""
    from talkbench.models.motion import CoarseFlow

    torch.manual_seed(0)
    gen = MotionGenerator(PRESETS["tiny-turn"]).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        src, drv = gen.encoder(x[:1]), gen.encoder(x[1:])
        assert torch.allclose(gen.render(src.w, drv.alpha, src.feats, src.alpha), x[:1], atol=1e-5)
        gen.synthesis.coarse.coef.weight.normal_(0, 0.05)
        same = gen.render(src.w, src.alpha, src.feats, src.alpha)
        moved = gen.render(src.w, drv.alpha, src.feats, src.alpha)
        assert torch.allclose(same, x[:1], atol=1e-5)
        assert (moved - x[:1]).abs().mean() > 1e-3
        coarse = CoarseFlow(20)
        coarse.coef.weight.normal_()
        d = torch.randn(3, 20)
        assert torch.allclose(coarse(2 * d, 16), 2 * coarse(d, 16), atol=1e-5)
        assert coarse(torch.zeros(1, 20), 16).abs().max() == 0
    with pytest.raises(ValueError, match="coarse flow: pass delta"):
        gen.synthesis(src.w, src.feats)


def test_mouth_window_opens_the_lips_and_leaves_the_eyes():
    """tiny-lips' coarse flow has three more fields, a window on a curated crop's mouth: a code change that drives
    only its vertical stretch shifts the two lips apart (or together) about the lip line, and nothing at the eyes or
    outside the face. A tiny-turn checkpoint (no mouth window) still builds with its nine fields."""
    from talkbench.models.motion import MOUTH_CENTRE, CoarseFlow, MotionConfig, flow_basis

    assert flow_basis(32).shape[0] == 9 and flow_basis(32, mouth=True).shape[0] == 12
    torch.testing.assert_close(flow_basis(32, mouth=True)[:9], flow_basis(32))
    assert MotionGenerator(PRESETS["tiny-lips"]).synthesis.coarse.coef.out_features == 24
    old = {k: v for k, v in PRESETS["tiny-turn"].to_dict().items() if k != "coarse_mouth"}
    assert MotionGenerator(MotionConfig.from_dict(old)).synthesis.coarse.coef.out_features == 18

    coarse = CoarseFlow(20, mouth=True)
    with torch.no_grad():
        coarse.coef.weight.zero_()
        coarse.coef.weight[2 * 12 - 1, 0] = 1.0  # y-flow of the last field (window × y about the mouth) ← code dim 0
    flow = coarse(torch.eye(20)[:1], 65)[0, 1]  # (65, 65) vertical flow; grid index i ↔ (i - 32) / 32
    at = lambda x, y: float(flow[round(32 + 32 * y), round(32 + 32 * x)])  # noqa: E731
    mx, my = MOUTH_CENTRE
    assert at(mx, my) == pytest.approx(0.0, abs=1e-6)  # the lip line stays
    assert at(mx, my + 0.1) > 0.3 and at(mx, my - 0.1) < -0.3  # opposite shifts of the lower and the upper lip
    peak = max(abs(at(mx, my + d)) for d in (0.1, 0.15, 0.2))
    assert abs(at(mx, my - 0.4)) < 0.2 * peak  # the eyes (a curated crop's: 0.4 above the lips)
    assert abs(at(mx, -0.4)) < 0.01 * peak and abs(at(0.9, my)) < 0.01 * peak  # the brow, and beside the face

def test_direction_basis_is_orthonormal():
    gen = MotionGenerator(PRESETS["tiny"])
    q = gen.synthesis.directions.basis()
    assert q.shape == (64, 20)
    assert torch.allclose(q.t() @ q, torch.eye(20), atol=1e-5)
    alpha = torch.randn(4, 20)
    # D(alpha) = Σ_i alpha_i q_i, so projecting back recovers alpha exactly
    assert torch.allclose(gen.synthesis.directions(alpha) @ q, alpha, atol=1e-5)


def _grouped_modconv(mod: layers.ModulatedConv2d, x, style):
    """The StyleGAN2 reference form: per-sample weights, one grouped conv (what LIA's ModulatedConv2d does)."""
    b, cin, h, w = x.shape
    s = mod.modulation(style).view(b, 1, cin, 1, 1)
    weight = mod.scale * mod.weight[None] * s  # (B, out, in, k, k)
    if mod.demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(b, -1, 1, 1, 1)
    cout, k = weight.shape[1], weight.shape[-1]
    if mod.upsample:
        wt = weight.transpose(1, 2).reshape(b * cin, cout, k, k)
        out = F.conv_transpose2d(x.reshape(1, b * cin, h, w), wt, stride=2, groups=b)
        return mod.blur(out.view(b, cout, *out.shape[-2:]))
    out = F.conv2d(x.reshape(1, b * cin, h, w), weight.view(b * cout, cin, k, k), padding=k // 2, groups=b)
    return out.view(b, cout, h, w)


@pytest.mark.parametrize("upsample", [False, True])
def test_modulated_conv_equals_grouped_reference(upsample):
    torch.manual_seed(1)
    mod = layers.ModulatedConv2d(8, 6, 3, 16, upsample=upsample)
    x, style = torch.randn(3, 8, 5, 5), torch.randn(3, 16)
    ours = mod(x, style)
    assert ours.shape == (3, 6, 10, 10) if upsample else (3, 6, 5, 5)
    torch.testing.assert_close(ours, _grouped_modconv(mod, x, style), rtol=1e-4, atol=1e-5)


def test_resblock_halves_and_discriminator_scores():
    assert layers.ResBlock(4, 8)(torch.randn(2, 4, 16, 16)).shape == (2, 8, 8, 8)
    d = Discriminator(PRESETS["tiny"])
    assert d(torch.randn(8, 3, 64, 64)).shape == (8, 1)
    assert d(torch.randn(3, 3, 64, 64)).shape == (3, 1)  # batch not divisible by the stddev group


def test_vgg19_has_torchvision_key_layout():
    net = VGG19Features()
    convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28]
    assert sorted(net.state_dict()) == sorted([f"features.{i}.{p}" for i in convs for p in ("weight", "bias")])
    # a torchvision-format file (all 16 convs + classifier) loads; a misshapen one is refused by key
    full = {k: torch.randn_like(v) for k, v in net.state_dict().items()}
    full.update({"features.30.weight": torch.randn(512, 512, 3, 3), "classifier.0.weight": torch.randn(4, 4)})
    net.load_torchvision(full)
    assert torch.equal(net.features[28].weight, full["features.28.weight"])
    full["features.0.weight"] = torch.randn(64, 1, 3, 3)
    with pytest.raises(WeightsError, match=r"features.0.weight: expected shape \(64, 3, 3, 3\)"):
        net.load_torchvision(full)


def test_perceptual_without_weights_names_the_alternative():
    with pytest.raises(ConfigError, match="none-l1-pyramid"):
        PyramidPerceptualLoss("vgg19")
    with pytest.raises(ValueError, match="unknown perceptual loss"):
        PyramidPerceptualLoss("lpips")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    fallback = PyramidPerceptualLoss("none-l1-pyramid")
    assert fallback(x, x).item() == 0
    # four pyramid levels of 10 · mean |x - y| with y = x + 0.5 everywhere: 4 × 10 × 0.5
    assert fallback(x, x + 0.5).item() == pytest.approx(20.0, rel=1e-5)


def test_club_separates_dependent_from_independent_codes():
    torch.manual_seed(0)
    x = torch.randn(2048, 4)
    y_dep = x @ torch.randn(4, 4) + 0.1 * torch.randn(2048, 4)
    y_ind = torch.randn(2048, 4)
    estimates = {}
    for name, y in (("dependent", y_dep), ("independent", y_ind)):
        club = CLUB(4, 4, 32)
        opt = torch.optim.Adam(club.parameters(), lr=1e-2)
        for _ in range(300):
            opt.zero_grad()
            club.learning_loss(x, y).backward()
            opt.step()
        estimates[name] = club(x, y).item()
    # measured: dependent 43.1, independent 0.30 (seed 0)
    assert estimates["dependent"] > 10.0 > 1.0 > abs(estimates["independent"])


def test_aam_margin_and_triplet():
    torch.manual_seed(0)
    emb, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    aam = AAMSoftmax(8, 3, margin=0.2, scale=30)
    plain = AAMSoftmax(8, 3, margin=0.0, scale=30)
    plain.weight = aam.weight
    assert aam(emb, labels).item() > plain(emb, labels).item()  # the margin makes the target harder
    a = torch.tensor([[1.0, 0.0]])
    assert triplet_loss(a, a, -a, margin=0.2).item() == 0  # positive identical, negative opposite
    assert triplet_loss(a, -a, a, margin=0.2).item() == pytest.approx(2.2)
    assert triplet_loss(a, -a, a, mask=torch.tensor([False])).item() == 0


def test_param_count_helper():
    assert count_params(torch.nn.Linear(3, 2)) == 8
    assert math.isclose(sum(p.numel() for p in MotionGenerator(PRESETS["tiny"]).parameters()),
                        dict(param_table(PRESETS["tiny"]))["generator total"])
