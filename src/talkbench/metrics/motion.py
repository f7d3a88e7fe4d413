"""Diversity and AKD from MediaPipe Face Mesh landmarks (468 points).

Diversity: standard deviation over time (population) of each landmark coordinate normalised by the frame size,
averaged over coordinates; head-pose (yaw/pitch/roll) standard deviation in degrees is reported beside it.
AKD: mean L2 distance in pixels between the landmarks of paired generated and ground-truth frames.
AKD↔driver: the distance between normalised keypoint motions of a generated video and its driver (below).
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


# ----------------------------------------------------------------------------- motion agreement with a driver
# Cross-reenactment's ``akd_driver``. Raw keypoint distance between a generated video and a driver of *another
# identity* mostly measures how their face shapes differ, so each video's Face Mesh keypoints are normalised first:
# the displacement of every keypoint from the video's first frame with a face, divided by the video's median
# inter-ocular distance. ``akd_driver`` is the mean L2 distance between the generated and driver displacements
# (unit: inter-ocular distances; lower = the motion follows the driver more closely). A static video scores the
# driver's own mean motion magnitude.

NORMALISATION = "displacement from the first face frame / median inter-ocular distance (MediaPipe Face Mesh 468)"


def normalised_displacements(mesh: np.ndarray) -> np.ndarray:
    """(T, 468, 3) landmarks (NaN rows: no face) -> (T, 468, 2) normalised displacements (NaN rows kept)."""
    from ..faces.points import five_points_from_mesh

    pts = mesh[..., :2]
    valid = ~np.isnan(pts[:, 0, 0])
    if not valid.any():
        return np.full(pts.shape, np.nan)
    five = five_points_from_mesh(mesh)
    scale = float(np.nanmedian(np.linalg.norm(five[:, 0] - five[:, 1], axis=-1)))
    ref = pts[int(np.argmax(valid))]
    return (pts - ref) / max(scale, 1e-6)


def driver_agreement(pred_mesh: np.ndarray, driver_mesh: np.ndarray) -> tuple[float | None, int]:
    """(mean distance of normalised displacements, frames with a face in both); None when there is none."""
    dp, dd = normalised_displacements(pred_mesh), normalised_displacements(driver_mesh)
    both = ~np.isnan(dp[:, 0, 0]) & ~np.isnan(dd[:, 0, 0])
    if not both.any():
        return None, 0
    return float(np.linalg.norm(dp[both] - dd[both], axis=-1).mean()), int(both.sum())
