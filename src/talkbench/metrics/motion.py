"""Diversity and AKD from MediaPipe Face Mesh landmarks (468 points).

Diversity: standard deviation over time (population) of each landmark coordinate normalised by the frame size,
averaged over coordinates; head-pose (yaw/pitch/roll) standard deviation in degrees is reported beside it.
AKD: mean L2 distance in pixels between the landmarks of paired generated and ground-truth frames.
"""

from __future__ import annotations

import numpy as np


def diversity(mesh: np.ndarray, width: int, height: int) -> tuple[float, int]:
    """(value, frames used) from (T, 468, 3) landmarks; NaN frames skipped."""
    valid = mesh[~np.isnan(mesh[:, 0, 0])]
    if len(valid) < 2:
        return float("nan"), len(valid)
    xy = valid[:, :, :2] / np.array([width, height])
    return float(xy.std(0).mean()), len(valid)


def pose_diversity(poses: np.ndarray) -> float:
    valid = poses[~np.isnan(poses[:, 0])]
    return float(valid.std(0).mean()) if len(valid) >= 2 else float("nan")


def akd(pred_mesh: np.ndarray, gt_mesh: np.ndarray) -> tuple[float, int]:
    both = ~np.isnan(pred_mesh[:, 0, 0]) & ~np.isnan(gt_mesh[:, 0, 0])
    if not both.any():
        return float("nan"), 0
    d = np.linalg.norm(pred_mesh[both, :, :2] - gt_mesh[both, :, :2], axis=-1)  # (n, 468)
    return float(d.mean()), int(both.sum())
