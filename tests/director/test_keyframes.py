"""Keyframes from a synthetic blueprint whose good and bad stretches are known."""

from __future__ import annotations

import numpy as np
import pytest

from talkbench.director.keyframes import KeyframeConfig, choose_keyframes
from talkbench.errors import ConfigError


def blueprint(n=300, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    bp = {"yaw": 8 * np.sin(t / 17), "pitch": 4 * np.sin(t / 11), "roll": 2 * np.sin(t / 23),
          "scale": 0.4 + 0.02 * np.sin(t / 29), "centre": np.stack([0.5 + 0.01 * np.sin(t / 31), 0.45 + 0 * t], 1),
          "clarity": 0.9 + 0.05 * rng.random(n)}
    bp["yaw"][100:130] = 50.0  # turned away: not near-frontal
    bp["clarity"][200:220] = 0.1  # occluded / blurred
    return bp


def test_keyframes_respect_spacing_and_avoid_turned_and_unclear_frames():
    bp = blueprint()
    cfg = KeyframeConfig(min_gap=20, max_gap=60)
    keys, reasons = choose_keyframes(bp, cfg)
    assert keys[0] == 0 and keys[-1] == 299
    gaps = np.diff(keys)
    assert gaps.min() >= 1 and gaps.max() <= 60 and np.all(gaps[:-1] >= 20)
    inner = keys[1:-1]
    assert not np.any((inner >= 100) & (inner < 130)) and not np.any((inner >= 200) & (inner < 220))
    assert all(np.abs(bp["yaw"][k]) <= cfg.max_angle and bp["clarity"][k] >= cfg.min_clarity for k in inner)
    assert len(reasons) == len(keys) and not any(r.startswith("forced") for r in reasons)


def test_a_window_without_eligible_frames_is_forced_and_says_so():
    bp = blueprint()
    bp["yaw"][60:200] = 70.0
    keys, reasons = choose_keyframes(bp, KeyframeConfig(min_gap=20, max_gap=60))
    assert np.diff(keys).max() <= 60
    assert any(r.startswith("forced") for r in reasons)


def test_frontality_and_diversity_decide_inside_the_window():
    n = 100
    flat = {"yaw": np.full(n, 20.0), "pitch": np.zeros(n), "roll": np.zeros(n), "scale": np.full(n, 0.4),
            "centre": np.full((n, 2), 0.5), "clarity": np.full(n, 0.9)}
    flat["yaw"][47] = 0.0  # the one frontal frame in the window [30, 60]
    keys, _ = choose_keyframes(flat, KeyframeConfig(min_gap=30, max_gap=60, w_diversity=0.0))
    assert keys[1] == 47
    moving = dict(flat, yaw=np.zeros(n))
    moving["scale"] = np.where(np.arange(n) >= 52, 0.5, 0.4)  # a zoom starts at frame 52
    keys, _ = choose_keyframes(moving, KeyframeConfig(min_gap=30, max_gap=60))
    assert keys[1] == 52  # the first frame unlike keyframe 0
    keys, _ = choose_keyframes(moving, KeyframeConfig(min_gap=30, max_gap=60, w_diversity=0.0))
    assert keys[1] == 30  # without the diversity term: the earliest of equal frames


def test_bad_blueprints_are_one_line_errors():
    bp = blueprint()
    with pytest.raises(ConfigError, match="lacks tracks"):
        choose_keyframes({k: v for k, v in bp.items() if k != "clarity"})
    with pytest.raises(ConfigError, match="'scale' has shape"):
        choose_keyframes(dict(bp, scale=bp["scale"][:10]))
    with pytest.raises(ConfigError, match="min_gap"):
        choose_keyframes(bp, KeyframeConfig(min_gap=50, max_gap=10))
