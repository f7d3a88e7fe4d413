"""Keypoint renderer: the hand skeleton raster, shapes, device moves, sizes, and (trained for seconds on the
astronaut portrait with a drawn moving hand) hands on beats hands off where the hand is.

Hand visibility is scored by hand-region agreement (L1 to the target inside the driving hand's skeleton mask): on
48×72 renders MediaPipe Hands finds no hand in the targets themselves, so its HKC would be 0 for both arms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from talkbench.models.body_hands import FaceTemplate, face_image_points
from talkbench.models.kp_renderer import (PRESETS, KeypointRenderer, count_params, get_config, hand_skeleton,
                                          renderer_losses, to_tensor)
from upper_material import TEXTS, clip, espeak, frames, portrait

TINY = dataclasses.replace(get_config("tiny"), size=(72, 48), expr_dim=8, channels=8, down=2, motion_channels=8,
                           hand_channels=4, gan_weight=0.0)
HAND_GAIN = 0.75  # hands-on hand-region L1 below 0.75 × hands-off (measured 0.129 vs 0.256, ratio 0.50)


def test_skeleton_raster_lies_on_the_bones():
    hands = torch.zeros(1, 2, 21, 2)
    hands[0, 0, :, 0] = torch.linspace(-0.5, 0.5, 21)  # a horizontal line of joints at y = 0
    img = hand_skeleton(hands, (33, 33))
    assert img[0, 0, 16, 8:25].min() > 0.9 and img[0, 0, 0].max() < 1e-3


def test_shapes_meta_and_sizes():
    model = KeypointRenderer(TINY)
    kp = torch.rand(2, TINY.points, 2) * 2 - 1
    out = model(torch.zeros(2, 3, 72, 48), kp, kp + 0.05, expr_src=torch.zeros(2, 8), expr_drv=torch.ones(2, 8),
                hands_on=torch.tensor([True, False]))
    assert out["image"].shape == (2, 3, 72, 48)
    assert out["skeleton"][1].abs().max() == 0 and out["skeleton"][0].max() > 0.5
    meta = KeypointRenderer(TINY).to("meta")
    assert all(x.device.type == "meta" for x in [*meta.parameters(), *meta.buffers()])
    paper, tiny = count_params(KeypointRenderer(PRESETS["paper"])), count_params(KeypointRenderer(PRESETS["tiny"]))
    assert 5e6 < paper < 60e6 and tiny < 1e6, (paper, tiny)


def keypoints(c, tpl):
    motion = torch.from_numpy(c["motion"])
    body = torch.from_numpy(c["body"])
    face = face_image_points(motion, tpl, body[:, 0])
    return torch.cat([face, body, torch.from_numpy(c["hands"]).flatten(1, 2)], 1)  # (T, P, 2)


@pytest.mark.slow
def test_hands_on_beats_hands_off_in_the_hand_region(tmp_path):
    from talkbench.models.losses import PyramidPerceptualLoss

    audio = espeak(TEXTS[0], tmp_path)
    tpl = FaceTemplate(8)
    src = portrait(72, 48)
    train, held = clip(audio, 8, 1.5, seed=0), clip(audio, 8, 1.0, seed=5)
    for c in (train, held):
        c["frames"], c["kp"] = to_tensor(frames(src, c["body"], c["hands"])), keypoints(c, tpl)
    source = to_tensor(src[None])
    torch.manual_seed(0)
    model = KeypointRenderer(TINY)
    perc = PyramidPerceptualLoss("none-l1-pyramid")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    rng = np.random.default_rng(0)
    kp0 = train["kp"][:1]
    for _ in range(150):
        idx = rng.integers(0, train["n"], 4)
        batch = {"source": source.expand(4, -1, -1, -1), "target": train["frames"][idx], "kp_src": kp0.expand(4, -1, -1),
                 "kp_drv": train["kp"][idx], "expr_src": torch.from_numpy(train["motion"][[0] * 4, :8]),
                 "expr_drv": torch.from_numpy(train["motion"][idx, :8])}
        on = torch.from_numpy(rng.random(4) >= TINY.hand_drop)
        loss = renderer_losses(model, perc, None, batch, on)[0]["total"]
        opt.zero_grad(), loss.backward(), opt.step()
    model.eval()
    idx = np.arange(0, held["n"], 4)
    k = len(idx)
    args = (source.expand(k, -1, -1, -1), kp0.expand(k, -1, -1), held["kp"][idx])
    with torch.no_grad():
        on = model(*args, hands_on=True)["image"]
        off = model(*args, hands_on=False)["image"]
        mask = (hand_skeleton(held["kp"][idx, -42:].view(k, 2, 21, 2), (72, 48), 0.05)[:, 1:2] > 0.3).float()
    target = held["frames"][idx]

    def hand_l1(img):
        return float(((img - target).abs() * mask).sum() / (3 * mask.sum()))

    l1_on, l1_off = hand_l1(on), hand_l1(off)
    print(f"hand-region L1: hands on {l1_on:.4f}, hands off {l1_off:.4f}")
    assert l1_on < HAND_GAIN * l1_off
