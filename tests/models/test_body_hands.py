"""Body/hand transformer: the fixed face template, shapes, device moves, and (trained for seconds) the hierarchy —
generated body keypoints follow the face motion they are conditioned on, above a shuffled-face baseline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from talkbench.models.body_hands import (PRESETS, BodyHands, FaceTemplate, count_params, get_config, rotation)
from upper_material import HELD_OUT, TEXTS, clip, espeak, portrait

TINY = dataclasses.replace(get_config("tiny"), expr_dim=8, dim=32, image_size=(96, 64), window=24)
HIERARCHY_CORR = 0.6  # measured 0.768 (shuffled face: -0.015) after 150 steps
HIERARCHY_MARGIN = 0.3  # above the same model fed a time-shuffled face motion


def test_template_rotates_and_deforms():
    tpl = FaceTemplate(8)
    motion = torch.zeros(2, 14)
    motion[:, -1] = 1.0
    motion[1, 8] = 1.0  # yaw 90°: the eyes swap depth for x
    pts = tpl(motion)
    assert torch.allclose(pts[0], tpl.mean, atol=1e-6)
    assert torch.allclose(pts[1, :, 0], tpl.mean[:, 2], atol=1e-5)
    assert torch.allclose(rotation(torch.zeros(3)), torch.eye(3))
    jaw = motion[:1].clone()
    jaw[0, 0] = 1.0  # the first expression component opens the jaw: lower lip and chin go down
    d = tpl(jaw)[0] - tpl.mean
    assert d[8, 1] > 0 and d[9, 1] > 0 and d[0].abs().max() < 1e-6


def test_shapes_meta_and_sizes():
    model = BodyHands(TINY)
    b, t = 2, 10
    out = model(torch.randn(b, t, 14), torch.randn(b, 4 * t, 39), torch.randn(b, 3, 96, 64), torch.randn(b, 9, 2),
                torch.randn(b, 2, 21, 2))
    assert out["body"].shape == (b, t, 9, 2) and out["hands"].shape == (b, t, 2, 21, 2)
    meta = BodyHands(TINY).to("meta")
    assert all(x.device.type == "meta" for x in [*meta.parameters(), *meta.buffers()])
    paper, tiny = count_params(BodyHands(PRESETS["paper"])), count_params(BodyHands(PRESETS["tiny"]))
    assert 5e6 < paper < 30e6 and tiny < 0.5e6, (paper, tiny)


def _batch(c, img, a, w):
    return {"face_motion": c["motion"][a:a + w], "audio": c["mfcc"][4 * a:4 * (a + w)], "image": img,
            "source_body": c["body"][0], "source_hands": c["hands"][0], "body": c["body"][a:a + w],
            "hands": c["hands"][a:a + w]}


@pytest.mark.slow
def test_body_follows_face_motion(tmp_path):
    audios = [espeak(t, tmp_path) for t in TEXTS]
    rng = np.random.default_rng(0)
    clips = [clip(a, 8, float(rng.uniform(0.5, 2.0)), (float(rng.uniform(-0.5, 0.5)), 0.0), seed=i)
             for i, a in enumerate(audios * 2)]
    img = torch.from_numpy(portrait()).permute(2, 0, 1).float() / 127.5 - 1
    torch.manual_seed(0)
    model = BodyHands(TINY)
    model.front_end.fit(torch.from_numpy(np.concatenate([c["mfcc"] for c in clips])))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        items = []
        for _ in range(8):
            c = clips[rng.integers(len(clips))]
            items.append(_batch(c, img, int(rng.integers(0, c["n"] - TINY.window)), TINY.window))
        batch = {k: torch.stack([torch.as_tensor(i[k]) for i in items]) for k in items[0]}
        loss = model.losses(batch)["total"]
        opt.zero_grad(), loss.backward(), opt.step()
    model.eval()
    held = clip(espeak(HELD_OUT, tmp_path), 8, 1.5, (0.3, 0.0), seed=7)
    one = {k: torch.as_tensor(v)[None] for k, v in _batch(held, img, 0, held["n"]).items()}
    perm = torch.from_numpy(np.random.default_rng(1).permutation(held["n"]))
    with torch.no_grad():
        pred = model(one["face_motion"], one["audio"], one["image"], one["source_body"], one["source_hands"])
        shuf = model(one["face_motion"][:, perm], one["audio"], one["image"], one["source_body"],
                     one["source_hands"])
    truth = held["body"][:, 1:3, 0].mean(1)  # shoulders' mid-point x: follows the head's tx and yaw

    def corr(p):
        return float(np.corrcoef(p["body"][0, :, 1:3, 0].mean(1).numpy(), truth)[0, 1])

    c_true, c_shuf = corr(pred), corr(shuf)
    print(f"shoulder-x correlation: face-driven {c_true:.3f}, shuffled face {c_shuf:.3f}")
    assert c_true > HIERARCHY_CORR and c_true > c_shuf + HIERARCHY_MARGIN
