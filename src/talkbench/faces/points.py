"""Landmark indices and the five points, named once for every package.

Naming rule: eyes, mouth corners and cheeks are named by the SUBJECT's side (the subject's right eye appears on the
image left in a non-mirrored photo). The five points follow insightface/ArcFace order, which is by IMAGE side:
image-left eye (subject's right), image-right eye (subject's left), nose tip, image-left mouth corner (subject's
right), image-right mouth corner (subject's left). SCRFD returns its five keypoints in this order too.
"""

from __future__ import annotations

import numpy as np

# MediaPipe Face Mesh (canonical 468-point topology).
MESH_RIGHT_EYE = (33, 133)  # subject's right eye: outer, inner corner (image left)
MESH_LEFT_EYE = (362, 263)  # subject's left eye: inner, outer corner (image right)
MESH_NOSE = 1  # nose tip
MESH_RIGHT_MOUTH = 61  # subject's right mouth corner (image left)
MESH_LEFT_MOUTH = 291
MESH_RIGHT_CHEEK, MESH_LEFT_CHEEK = 234, 454
MESH_CHIN, MESH_FOREHEAD = 152, 10
MESH_UPPER_LIP, MESH_LOWER_LIP = 13, 14  # inner lip midpoints (the mouth opening)

# Head-pose pairs (subject's left point, subject's right point) and the chin -> forehead line.
MESH_PAIRS = ((MESH_LEFT_EYE[1], MESH_RIGHT_EYE[0]), (MESH_LEFT_EYE[0], MESH_RIGHT_EYE[1]),
              (MESH_LEFT_MOUTH, MESH_RIGHT_MOUTH), (MESH_LEFT_CHEEK, MESH_RIGHT_CHEEK))
MESH_UP = (MESH_CHIN, MESH_FOREHEAD)

# The same construction on the 68-point (iBUG) layout of insightface's 1k3d68 model.
IBUG_PAIRS = ((45, 36), (42, 39), (54, 48), (16, 0))
IBUG_UP = (8, 27)  # chin, top of the nose bridge

FIVE_POINT_NAMES = ("image_left_eye", "image_right_eye", "nose", "image_left_mouth", "image_right_mouth")


def five_points_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """(..., 468, >=2) mesh points -> (..., 5, 2) in ArcFace order; NaN rows stay NaN."""
    p = np.asarray(mesh, np.float64)[..., :2]
    return np.stack([p[..., list(MESH_RIGHT_EYE), :].mean(-2), p[..., list(MESH_LEFT_EYE), :].mean(-2),
                     p[..., MESH_NOSE, :], p[..., MESH_RIGHT_MOUTH, :], p[..., MESH_LEFT_MOUTH, :]], axis=-2)


def inter_ocular(mesh: np.ndarray) -> np.ndarray:
    """(..., 468, >=2) -> (...) distance between the two eye centres, in the landmarks' units."""
    five = five_points_from_mesh(mesh)
    return np.linalg.norm(five[..., 0, :] - five[..., 1, :], axis=-1)


def lip_gap(mesh: np.ndarray) -> np.ndarray:
    """(..., 468, >=2) -> (...) inner-lip gap over the inter-ocular distance: 0 with the mouth closed, ~0.3-0.5 wide
    open. Scale-free, so it compares faces of any size; NaN where no face was found."""
    p = np.asarray(mesh, np.float64)[..., :2]
    gap = np.linalg.norm(p[..., MESH_LOWER_LIP, :] - p[..., MESH_UPPER_LIP, :], axis=-1)
    return gap / np.maximum(inter_ocular(mesh), 1e-6)
