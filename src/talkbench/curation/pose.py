"""Head pose (yaw, pitch, roll in degrees) from 3-D face landmarks, and the 5-point landmark set.

Method (a geometric estimate, no fitted 3-D model): MediaPipe's face mesh gives 468 points with a depth ``z`` in the
same pixel scale as ``x`` and ``y``. In a camera frame with x to the image right, y up and z towards the viewer, we
build the head's own axes from symmetric landmark pairs:

- ``right``: the mean of (subject's left point − subject's right point) over the outer and inner eye corners, the
  mouth corners and the cheek edges (averaging four pairs cancels most expression and mesh noise);
- ``up``: chin → top of the forehead, made orthogonal to ``right``;
- ``forward``: right × up (out of the face).

The rotation matrix [right | up | forward] is split as R = Rz(roll) · Ry(yaw) · Rx(pitch). Conventions:
roll > 0 when the face is turned counter-clockwise in the image (as cv2.getRotationMatrix2D rotates for a positive
angle); yaw > 0 when the face turns towards the image right (the subject's left); pitch > 0 when the face looks up.
Validation on real photos (tests/curation/test_faces.py): roll follows an applied image rotation within ±4° over
±70°; a mirrored face flips yaw and roll and keeps pitch. Pitch has no absolute reference here: it is measured from
the chin–forehead line, so a face looking straight at the camera reads a few degrees off zero (the near-frontal
astronaut photo reads yaw −1°, pitch −10°, roll −3°). With the 60° limits of the pose filter this bias is small,
but thresholds tighter than ~20° on pitch would need a calibrated 3-D model (solvePnP against a canonical face).

insightface's landmark_3d_68 model gives the same kind of 3-D points (68-point layout); ``pose_from_points`` takes
the index pairs as arguments so both backends share one estimate.
"""

from __future__ import annotations

import numpy as np

# MediaPipe face-mesh indices (canonical 468-point topology).
MESH_PAIRS = ((263, 33), (362, 133), (291, 61), (454, 234))  # (subject's left, subject's right)
MESH_UP = (152, 10)  # chin, top of the forehead
# 5 points in insightface/ArcFace order: image-left eye, image-right eye, nose tip, image-left / image-right mouth
# corner.
MESH_EYE_RIGHT = (33, 133)  # subject's right eye (image left): outer and inner corner
MESH_EYE_LEFT = (362, 263)
MESH_NOSE = 1
MESH_MOUTH = (61, 291)

# The same construction on the 68-point (iBUG) layout of insightface's 1k3d68 model.
IBUG_PAIRS = ((45, 36), (42, 39), (54, 48), (16, 0))
IBUG_UP = (8, 27)  # chin, top of the nose bridge


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


def landmarks5_from_mesh(points: np.ndarray) -> np.ndarray:
    """(5, 2) eyes, nose tip, mouth corners in ArcFace template order from (468, ≥2) mesh points."""
    p = np.asarray(points, np.float64)[:, :2]
    return np.stack(
        [
            p[list(MESH_EYE_RIGHT)].mean(axis=0),
            p[list(MESH_EYE_LEFT)].mean(axis=0),
            p[MESH_NOSE],
            p[MESH_MOUTH[0]],
            p[MESH_MOUTH[1]],
        ]
    )
