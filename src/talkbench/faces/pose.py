"""Head pose (yaw, pitch, roll in degrees) from 3-D face landmarks: the one estimator of talkbench.

The curation pose filter (|angle| < 60°) and the pose metrics (the pose spread beside Diversity) both use it.

Method (a geometric estimate, no fitted 3-D model, no camera intrinsics): MediaPipe's face mesh gives 468 points
with a depth ``z`` in the same pixel scale as ``x`` and ``y``. In a camera frame with x to the image right, y up and
z towards the viewer, the head's own axes are built from symmetric landmark pairs:

- ``right``: the mean of (subject's left point − subject's right point) over the outer and inner eye corners, the
  mouth corners and the cheek edges (averaging four pairs cancels most expression and mesh noise);
- ``up``: chin → top of the forehead, made orthogonal to ``right``;
- ``forward``: right × up (out of the face).

The rotation matrix [right | up | forward] is split as R = Rz(roll) · Ry(yaw) · Rx(pitch). Conventions:
roll > 0 when the face is turned counter-clockwise in the image (as cv2.getRotationMatrix2D rotates for a positive
angle); yaw > 0 when the face turns towards the image right (the subject's left); pitch > 0 when the face looks up.
Validation on real photos (tests/faces/test_pose.py, tests/curation/test_faces.py): roll follows an applied image
rotation within ±4° over ±70°; a mirrored face flips yaw and roll and keeps pitch. Pitch has no absolute reference:
it is measured from the chin–forehead line, so a face looking straight at the camera reads a few degrees off zero
(the near-frontal astronaut photo reads yaw −1°, pitch −10°, roll −3°). With the 60° limits of the pose filter this
bias is small, but thresholds tighter than ~20° on pitch would need a calibrated 3-D model.

Why this one and not solvePnP on six points against a generic 3-D face (the metrics' former estimator): solvePnP
needs an assumed focal length and a generic head shape, and it uses the 2-D points only; this estimate uses the
landmark depth the models already give, needs no camera, and works unchanged on insightface's 68-point 3-D layout.
"""

from __future__ import annotations

import numpy as np

from .points import IBUG_PAIRS, IBUG_UP, MESH_PAIRS, MESH_UP

__all__ = ["IBUG_PAIRS", "IBUG_UP", "MESH_PAIRS", "MESH_UP", "head_pose", "pose_from_points"]


def pose_from_points(points: np.ndarray, pairs=MESH_PAIRS, up=MESH_UP) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from (N, 3) landmarks in image pixels (x right, y down, z away from camera)."""
    p = np.asarray(points, np.float64)
    p = np.stack([p[:, 0], -p[:, 1], -p[:, 2]], axis=1)  # → x right, y up, z towards the viewer
    right = np.mean([p[a] - p[b] for a, b in pairs], axis=0)
    right /= np.linalg.norm(right) + 1e-12
    upv = p[up[1]] - p[up[0]]
    upv = upv - upv.dot(right) * right
    upv /= np.linalg.norm(upv) + 1e-12
    forward = np.cross(right, upv)
    rot = np.stack([right, upv, forward], axis=1)
    # R = Rz(roll) Ry(yaw) Rx(pitch): closed form of the ZYX decomposition.
    yaw = np.degrees(np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0)))
    roll = np.degrees(np.arctan2(rot[1, 0], rot[0, 0]))
    pitch_down = np.degrees(np.arctan2(rot[2, 1], rot[2, 2]))
    # Rx(+a) turns the forward axis towards -y (down); report pitch > 0 for looking up.
    return float(yaw), float(-pitch_down), float(roll)


def head_pose(mesh: np.ndarray, pairs=MESH_PAIRS, up=MESH_UP) -> np.ndarray:
    """(T, N, 3) landmarks per frame (NaN rows: no face) -> (T, 3) yaw, pitch, roll in degrees (NaN rows kept)."""
    out = np.full((len(mesh), 3), np.nan)
    for i, points in enumerate(mesh):
        if not np.isnan(points[0, 0]):
            out[i] = pose_from_points(points, pairs, up)
    return out
