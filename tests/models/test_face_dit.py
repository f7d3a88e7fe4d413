"""Face motion DiT: shapes, device moves, sizes, determinism, and (trained for seconds on espeak-ng speech with
known motion) the amplitude control and the style reference doing what they are for."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from talkbench.models.face_dit import PRESETS, FaceDiT, count_params, get_config

from upper_material import HELD_OUT, TEXTS, clip, espeak

TINY = dataclasses.replace(get_config("tiny"), expr_dim=8, window=24, style_frames=16)
# Measured (250 steps, CPU): expression range 0.69/0.95/1.40 and pose range 0.33/0.46/0.71 at amplitude 0.5/1/2;
# style: pose MAE 0.405 → 0.342, SSIM 0.041 → 0.029, yaw/pitch mean distance to the reference 1.15 → 0.95.
STYLE_MAE_GAIN = 0.95  # measured 0.845 (0.405 → 0.342) after 250 steps; the reference must lower the MAE


def windows(clips, cfg, n, rng):
    """n training windows: motion, prev, audio, style (another window of the same clip)."""
    w, p, s = cfg.window, cfg.prev_frames, cfg.style_frames
    out = {k: [] for k in ("motion", "prev", "audio", "style")}
    for _ in range(n):
        c = clips[rng.integers(len(clips))]
        a = int(rng.integers(p, c["n"] - w + 1))
        b = int(rng.integers(0, c["n"] - s + 1))
        out["motion"].append(c["motion"][a:a + w]), out["prev"].append(c["motion"][a - p:a])
        out["audio"].append(c["mfcc"][4 * a:4 * (a + w)]), out["style"].append(c["motion"][b:b + s])
    return {k: torch.from_numpy(np.stack(v)) for k, v in out.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("face-speech")
    audios = [espeak(t, folder, v) for t in TEXTS for v in ("en", "en-us")]
    rng = np.random.default_rng(0)
    clips = [clip(a, TINY.expr_dim, float(np.exp(rng.uniform(np.log(0.4), np.log(2.5)))),
                  (float(rng.uniform(-0.5, 0.5)), float(rng.uniform(-0.3, 0.3))), seed=i)
             for i, a in enumerate(audios * 2)]
    torch.manual_seed(0)
    model = FaceDiT(TINY)
    model.diffusion.fit_normalization(torch.from_numpy(np.concatenate([c["motion"] for c in clips])))
    model.net.front_end.fit(torch.from_numpy(np.concatenate([c["mfcc"] for c in clips])))
    model.fit_amplitude(windows(clips, TINY, 256, rng)["motion"])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for step in range(STEPS):
        loss = model.losses(windows(clips, TINY, 8, rng), gen)["total"]
        opt.zero_grad(), loss.backward(), opt.step()
    model.eval()
    held = espeak(HELD_OUT, folder)
    return model, held


STEPS = 250


def test_shapes_meta_and_sizes():
    model = FaceDiT(TINY)
    b, t = 2, TINY.window
    batch = {"motion": torch.randn(b, t, TINY.motion_dim), "prev": torch.randn(b, 4, TINY.motion_dim),
             "audio": torch.randn(b, 4 * t, 39), "style": torch.randn(b, 10, TINY.motion_dim)}
    assert model.losses(batch)["total"].ndim == 0
    meta = FaceDiT(TINY).to("meta")
    assert all(x.device.type == "meta" for x in [*meta.parameters(), *meta.buffers()])
    assert meta.generate(torch.zeros(1, 4 * 8, 39, device="meta"), torch.zeros(1, 4, TINY.motion_dim,
                         device="meta"), steps=2).shape == (1, 8, TINY.motion_dim)
    paper, tiny = count_params(FaceDiT(PRESETS["paper"])), count_params(FaceDiT(PRESETS["tiny"]))
    assert 20e6 < paper < 60e6 and tiny < 0.5e6, (paper, tiny)


def _gen(model, audio, amplitude=1.0, style=None, seed=0):
    from talkbench.models.audio_features import mfcc_features

    feats = torch.from_numpy(mfcc_features(audio))[None]
    prev = model.diffusion.data_mean.expand(1, 4, -1)
    return model.generate(feats, prev, amplitude=amplitude, style=style, steps=10, seed=seed)[0].numpy()


@pytest.mark.slow
def test_same_seed_same_output(trained):
    model, held = trained
    a, b, c = _gen(model, held, seed=3), _gen(model, held, seed=3), _gen(model, held, seed=4)
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


@pytest.mark.slow
def test_amplitude_grows_the_generated_range(trained):
    model, held = trained
    e = TINY.expr_dim
    ranges = {}
    for amp in (0.5, 1.0, 2.0):
        m = np.stack([_gen(model, held, amp, seed=s) for s in range(3)])
        ranges[amp] = (np.ptp(m[:, :, :e], 1).mean(), np.ptp(m[:, :, e:e + 3], 1).mean())
    print("ranges (expression, pose)", ranges)
    for g in (0, 1):
        assert ranges[0.5][g] < ranges[1.0][g] < ranges[2.0][g], ranges
    assert ranges[2.0][0] > 1.5 * ranges[0.5][0], ranges  # measured ×2.04 (0.69 → 1.40)


@pytest.mark.slow
def test_style_reference_moves_pose_towards_it(trained):
    from skimage.metrics import structural_similarity

    model, held = trained
    e = TINY.expr_dim
    ref = clip(held, e, 2.0, (0.6, 0.35), seed=99)  # a large head motion, head held turned and raised
    truth = ref["motion"]
    style = torch.from_numpy(truth[: TINY.style_frames])[None]
    without = np.stack([_gen(model, held, seed=s) for s in range(3)])
    with_ref = np.stack([_gen(model, held, style=style, seed=s) for s in range(3)])

    def scores(gen):
        mae = np.abs(gen[:, :, e:e + 3] - truth[None, :, e:e + 3]).mean()
        lo, hi = truth[:, e:e + 3].min(), truth[:, e:e + 3].max()
        ssim = np.mean([structural_similarity(g[:, e:e + 3], truth[:, e:e + 3], data_range=hi - lo, win_size=3)
                        for g in gen])
        return mae, ssim

    (mae0, ssim0), (mae1, ssim1) = scores(without), scores(with_ref)
    mean_ref, mean0, mean1 = truth[:, e:e + 2].mean(0), without[:, :, e:e + 2].mean((0, 1)), \
        with_ref[:, :, e:e + 2].mean((0, 1))
    print(f"pose MAE {mae0:.3f} -> {mae1:.3f}; SSIM {ssim0:.3f} -> {ssim1:.3f}; yaw/pitch mean ref {mean_ref} "
          f"without {mean0} with {mean1}")
    assert mae1 < STYLE_MAE_GAIN * mae0
    # SSIM of the coefficient sequences is reported, not asserted: measured 0.041 without, 0.029 with the reference
    # (the tiny model copies the reference's offset and range, not its temporal pattern)
    assert np.abs(mean1 - mean_ref).sum() < np.abs(mean0 - mean_ref).sum()
