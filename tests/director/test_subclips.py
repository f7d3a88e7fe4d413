"""Sub-clips in one batch with clamped ends, on a toy prior whose optimal denoiser is closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from director_toy import gp_conditional_sampler, gp_inpaint_sampler, sample_prior, unclamped_sampler
from talkbench.director.keyframes import KeyframeConfig, choose_keyframes
from talkbench.director.plan import n_frames
from talkbench.director.subclips import boundary_jerk, denoise_subclips, pad_subclips, subclip_spans
from talkbench.errors import ConfigError

KEYS = [0, 40, 95, 150, 210, 260, 299]
STEPS = 10  # DDIM steps of the toy sampler


@pytest.fixture(scope="module")
def blueprint():
    return sample_prior(300, 4, seed=1)


@pytest.fixture(scope="module")
def directed(blueprint):
    return denoise_subclips(gp_conditional_sampler(STEPS), blueprint, KEYS, seed=3)


def test_spans_padding_and_masks():
    spans = subclip_spans(KEYS, 300)
    assert spans[0] == (0, 40) and spans[-1] == (260, 299)
    index, valid, clamp = pad_subclips(spans, context=3)
    assert index.shape == (6, 61) and valid.sum().item() == sum(b - a + 1 for a, b in spans)
    assert clamp[0, :3].all() and clamp[0, 38:41].all() and not clamp[0, 3:38].any() and not clamp[0, 41:].any()
    with pytest.raises(ConfigError, match="must start at frame 0"):
        subclip_spans([5, 299], 300)


def test_boundary_frames_equal_the_keyframes_exactly(blueprint, directed):
    assert torch.equal(directed[KEYS], blueprint[KEYS])
    assert not torch.allclose(directed, blueprint)  # the rest is generated, not copied


def test_batched_equals_sequential_under_a_fixed_seed(blueprint, directed):
    sequential = denoise_subclips(gp_conditional_sampler(STEPS), blueprint, KEYS, seed=3, batched=False)
    assert torch.allclose(directed, sequential, atol=1e-10, rtol=0)
    other = denoise_subclips(gp_conditional_sampler(STEPS), blueprint, KEYS, seed=4)
    assert (other - directed).abs().max() > 0.1


def test_total_frames_is_duration_times_fps():
    duration, fps = 7.37, 25
    n = n_frames(duration, fps)
    assert n == 184
    bp = {"yaw": np.zeros(n), "pitch": np.zeros(n), "roll": np.zeros(n), "scale": np.full(n, 0.4),
          "centre": np.full((n, 2), 0.5), "clarity": np.ones(n)}
    keys, _ = choose_keyframes(bp, KeyframeConfig(min_gap=20, max_gap=50))
    motion = denoise_subclips(gp_conditional_sampler(8), sample_prior(n, 2, seed=0), keys, seed=0)
    assert motion.shape == (n, 2)


def test_jerk_at_boundaries_is_within_the_jerk_inside_subclips(blueprint, directed):
    at, inside = boundary_jerk(directed, KEYS)
    # Measured (10 steps): around keyframes median 0.030, max 0.058; inside median 0.025, p90 0.038, max 0.054.
    # A true sample of the prior (the blueprint itself) reads 0.065 around the same frames against 0.058 inside,
    # so "within the distribution" allows the maximum 25 % above the inside maximum.
    assert np.median(at) <= np.percentile(inside, 90) and at.max() <= 1.25 * inside.max()
    # Baselines that must fail: one or two clamped frames (velocity and acceleration kinks; measured 0.39 and
    # 0.19), replacement-only inpainting (2.0), sub-clips generated without their keyframes (6.5).
    for context, sampler in ((1, gp_conditional_sampler(STEPS)), (2, gp_conditional_sampler(STEPS)),
                             (3, gp_inpaint_sampler(STEPS)), (3, unclamped_sampler(STEPS))):
        motion = denoise_subclips(sampler, blueprint, KEYS, seed=3, context=context)
        at_b, _ = boundary_jerk(motion, KEYS)
        assert at_b.max() > 3 * inside.max(), context


def test_a_sampler_that_moves_clamped_frames_is_refused(blueprint):
    with pytest.raises(ConfigError, match="changed clamped frames"):
        denoise_subclips(lambda noise, known, clamp, valid, cond: noise, blueprint, KEYS)


def test_a_five_minute_speech_is_one_batch_of_bounded_length():
    """7500 frames: the sampler sees one call of (sub-clips, ≤ max_gap + 1 frames), never the whole length."""
    n = n_frames(300.0, 25)
    rng = np.random.default_rng(0)
    bp = {"yaw": 10 * np.sin(np.arange(n) / 40), "pitch": 5 * rng.standard_normal(n), "roll": np.zeros(n),
          "scale": np.full(n, 0.4), "centre": np.full((n, 2), 0.5), "clarity": rng.uniform(0.3, 1.0, n)}
    cfg = KeyframeConfig(min_gap=25, max_gap=75)
    keys, _ = choose_keyframes(bp, cfg)
    calls = []

    def linear(noise, known, clamp, valid, cond):
        """Closed form between the clamped ends: linear interpolation of the keyframes (honours ``valid``)."""
        calls.append(tuple(noise.shape))
        out = torch.zeros_like(noise)
        for b in range(noise.shape[0]):
            m = int(valid[b].sum())
            w = torch.linspace(0, 1, m, dtype=noise.dtype)[:, None]
            out[b, :m] = (1 - w) * known[b, 0] + w * known[b, m - 1]
            out[b, :m][clamp[b, :m]] = known[b, :m][clamp[b, :m]]
        return out

    motion = denoise_subclips(linear, torch.as_tensor(np.stack([bp["yaw"], bp["pitch"]], 1)), keys, seed=0)
    assert motion.shape == (7500, 2)
    (shape,) = calls
    assert shape[0] == len(keys) - 1 >= 100 and shape[1] <= cfg.max_gap + 1
