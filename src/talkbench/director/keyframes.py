"""Keyframes chosen from a motion blueprint (Kling-Avatar step 3), by documented criteria. Pure numpy.

A blueprint holds per-frame tracks: ``yaw``, ``pitch``, ``roll`` (degrees), ``scale`` (face size / image size),
``centre`` (T, 2) (face centre / image size) and ``clarity`` in [0, 1] (how clearly the face is seen: detection
confidence, sharpness, no occlusion). Criteria, in this order:

1. **Eligible**: near-frontal (|yaw|, |pitch|, |roll| ≤ ``max_angle``) and clear (clarity ≥ ``min_clarity``).
2. **Spacing**: consecutive keyframes are ``min_gap`` to ``max_gap`` frames apart. ``max_gap`` bounds the
   longest sub-clip, hence the memory of the one batched pass. The first and last frames are always keyframes
   (the sub-clips cover the whole video); a window with no eligible frame takes its last frame, recorded as forced.
3. **Score** inside the window: ``w_frontal`` · frontality + ``w_clarity`` · clarity + ``w_diversity`` ·
   motion distance from the previous keyframe (pose in units of ``max_angle``, scale and centre in units of their
   spread over the blueprint, capped at 1): sub-clips then span varied motion, not one pose repeated.
   Ties go to the earliest frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

TRACKS = ("yaw", "pitch", "roll", "scale", "centre", "clarity")


@dataclass(frozen=True)
class KeyframeConfig:
    max_angle: float = 25.0
    min_clarity: float = 0.5
    min_gap: int = 25
    max_gap: int = 75
    w_frontal: float = 1.0
    w_clarity: float = 1.0
    w_diversity: float = 1.0


def check_blueprint(blueprint: dict) -> int:
    """Number of frames; a one-line ConfigError for a missing track or mismatched lengths."""
    missing = [k for k in TRACKS if k not in blueprint]
    if missing:
        raise ConfigError(f"blueprint lacks tracks {missing}; it needs {list(TRACKS)}")
    n = len(np.asarray(blueprint["yaw"]))
    for key in TRACKS:
        arr = np.asarray(blueprint[key], dtype=np.float64)
        want = (n, 2) if key == "centre" else (n,)
        if arr.shape != want:
            raise ConfigError(f"blueprint track {key!r} has shape {arr.shape}, expected {want}")
        if not np.all(np.isfinite(arr)):
            raise ConfigError(f"blueprint track {key!r} has non-finite values")
    if n < 2:
        raise ConfigError(f"a blueprint needs at least 2 frames, got {n}")
    return n


def choose_keyframes(blueprint: dict, cfg: KeyframeConfig = KeyframeConfig()) -> tuple[np.ndarray, list[str]]:
    """Sorted keyframe indices (first and last frame included) and why each was chosen."""
    if not 1 <= cfg.min_gap <= cfg.max_gap:
        raise ConfigError(f"need 1 <= min_gap <= max_gap, got {cfg.min_gap} and {cfg.max_gap}")
    n = check_blueprint(blueprint)
    pose = np.stack([np.asarray(blueprint[k], dtype=np.float64) for k in ("yaw", "pitch", "roll")], 1)  # (T, 3)
    clarity = np.asarray(blueprint["clarity"], dtype=np.float64)
    frontal = 1.0 - np.clip(np.abs(pose).max(1) / cfg.max_angle, 0, 1)  # 1 = frontal, 0 = at the limit
    eligible = (np.abs(pose).max(1) <= cfg.max_angle) & (clarity >= cfg.min_clarity)
    state = np.concatenate([pose / cfg.max_angle, _unit(np.asarray(blueprint["scale"], float)[:, None]),
                            _unit(np.asarray(blueprint["centre"], float))], 1)  # (T, 6)
    keys, reasons = [0], ["first frame"]
    while n - 1 - keys[-1] > cfg.max_gap:
        k = keys[-1]
        window = np.arange(k + cfg.min_gap, min(k + cfg.max_gap, n - 1 - cfg.min_gap) + 1)
        ok = window[eligible[window]] if len(window) else window
        if len(ok) == 0:
            pick = int(min(k + cfg.max_gap, n - 2))
            keys.append(pick)
            reasons.append("forced: no near-frontal clear frame in the window")
            continue
        diversity = np.minimum(np.linalg.norm(state[ok] - state[k], axis=1), 1.0)
        score = cfg.w_frontal * frontal[ok] + cfg.w_clarity * clarity[ok] + cfg.w_diversity * diversity
        pick = int(ok[int(np.argmax(score))])
        keys.append(pick)
        reasons.append(f"score {score.max():.3f} (frontal {frontal[pick]:.2f}, clarity {clarity[pick]:.2f}, "
                       f"diversity {diversity[int(np.argmax(score))]:.2f})")
    keys.append(n - 1)
    reasons.append("last frame")
    return np.asarray(keys, dtype=np.int64), reasons


def _unit(x: np.ndarray) -> np.ndarray:
    spread = x.std(0)
    return (x - x.mean(0)) / np.where(spread > 1e-9, spread, 1.0)
