"""Per-frame motion targets of the upper-body profile (ChatAnyone style): schemas, registration and array loading.

``talkbench extract-targets`` writes five tables into one folder; all but the basis have one row per clip frame:

- ``expression``: ``coeffs`` (E,) face expression coefficients: the frame's 468-point face mesh, Procrustes-aligned
  (rotation, scale, translation removed) to the basis mean, projected on the PCA basis;
- ``expression_basis``: row ``index = -1`` is the mean aligned mesh (468×3 flattened), rows 0..E-1 the components
  (unit vectors), with the variance each explains; fitted on the TRAIN split only;
- ``head_pose``: ``pose6`` = (yaw, pitch, roll) in RADIANS — the ZYX Euler angles of ``talkbench.faces.pose``
  (R = Rz(roll)·Ry(yaw)·Rx(pitch); yaw > 0 towards the image right, pitch > 0 looking up, roll > 0 counter-clockwise
  on screen) — then (tx, ty, tz): the mesh centroid x and y divided by the frame WIDTH, and tz = log of the mesh's
  RMS radius (x, y) over the frame width (a weak-perspective depth: larger is closer);
- ``body_keypoints``: ``points`` (25, 3) MediaPipe Pose landmarks 0..24 (face, shoulders, elbows, wrists, hand
  points, hips) as (x, y, z) divided by the frame width (z is Pose's depth, same scale), and ``visibility`` (25,);
- ``hand_keypoints``: ``points`` (2, 21, 3) MediaPipe Hands joints as (x, y, z) / frame width; slot 0 holds the
  hand MediaPipe labels "Left", slot 1 "Right" (its labels assume a mirrored selfie image; they are kept as
  reported, not remapped to the subject's side), ``present`` (2,) and ``score`` (2,) its handedness confidence.

Missing values are NaN with ``valid`` / ``present`` false, never null, so ``load_targets`` gives plain arrays:
expression (T, E), pose6 (T, 6), body (T, 25, 3), hands (T, 2, 21, 3) and the masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from .schemas import SORT_KEYS, TABLES

BODY_JOINTS = 25
HAND_JOINTS = 21
MESH_POINTS = 468
HAND_SLOTS = ("Left", "Right")  # MediaPipe handedness labels, as reported

_ID = [pa.field("clip_id", pa.string(), nullable=False), pa.field("frame", pa.int32(), nullable=False)]

EXPRESSION = pa.schema(_ID + [
    pa.field("coeffs", pa.list_(pa.float32())),  # (E,)
    pa.field("valid", pa.bool_()),  # a face mesh was found
])

EXPRESSION_BASIS = pa.schema([
    pa.field("index", pa.int32(), nullable=False),  # -1: the mean aligned mesh; 0..E-1: components
    pa.field("values", pa.list_(pa.float64(), MESH_POINTS * 3)),
    pa.field("variance", pa.float64()),  # of the component over the training frames (null for the mean)
    pa.field("n_frames", pa.int64()),  # training frames the basis is fitted on
    pa.field("fit_split", pa.string()),
    pa.field("clips_sha256", pa.string()),  # of the clip manifest the basis was fitted from
])

HEAD_POSE = pa.schema(_ID + [
    pa.field("pose6", pa.list_(pa.float32(), 6)),  # yaw, pitch, roll (rad), tx, ty, tz
    pa.field("valid", pa.bool_()),
])

BODY_KEYPOINTS = pa.schema(_ID + [
    pa.field("points", pa.list_(pa.list_(pa.float32(), 3), BODY_JOINTS)),
    pa.field("visibility", pa.list_(pa.float32(), BODY_JOINTS)),
    pa.field("valid", pa.bool_()),
])

HAND_KEYPOINTS = pa.schema(_ID + [
    pa.field("points", pa.list_(pa.list_(pa.list_(pa.float32(), 3), HAND_JOINTS), 2)),
    pa.field("present", pa.list_(pa.bool_(), 2)),
    pa.field("score", pa.list_(pa.float32(), 2)),
])

TARGET_TABLES: dict[str, pa.Schema] = {
    "expression": EXPRESSION,
    "expression_basis": EXPRESSION_BASIS,
    "head_pose": HEAD_POSE,
    "body_keypoints": BODY_KEYPOINTS,
    "hand_keypoints": HAND_KEYPOINTS,
}

# Registered in the one table registry, so write_table / read_table validate them like every manifest.
TABLES.update(TARGET_TABLES)
SORT_KEYS.update({name: ("index",) if name == "expression_basis" else ("clip_id", "frame") for name in TARGET_TABLES})


# ----------------------------------------------------------------------------------------------- the tables' formulas
# One home for how a face mesh becomes the ``expression`` and ``head_pose`` values: curation writes the tables with
# them, and the avatar models (which never import curation) read new faces with them at generation and bench time.


def similarity_align(points: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``points`` (N, 3) mapped onto ``ref`` by the least-squares similarity (Umeyama, no reflection)."""
    mu_p, mu_r = points.mean(0), ref.mean(0)
    p, r = points - mu_p, ref - mu_r
    u, sig, vt = np.linalg.svd(r.T @ p / len(p))
    d = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2, 2] = -1
    rot = u @ d @ vt
    scale = np.trace(np.diag(sig) @ d) / p.var(0).sum()
    return scale * p @ rot.T + mu_r


def expression_coefficients(meshes: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """(T, 468, 3) meshes (NaN rows: no face) → (T, E): each mesh aligned to the basis ``mean`` (468, 3), minus it,
    projected on ``components`` (E, 1404); NaN rows kept."""
    mean = np.asarray(mean, np.float64).reshape(MESH_POINTS, 3)
    components = np.asarray(components, np.float64).reshape(len(components), MESH_POINTS * 3)
    out = np.full((len(meshes), len(components)), np.nan)
    for i, m in enumerate(meshes):
        if not np.isnan(m[0, 0]):
            out[i] = (similarity_align(m, mean) - mean).reshape(-1) @ components.T
    return out


def pose6_from_mesh(meshes: np.ndarray, width: int, angles_deg: np.ndarray) -> np.ndarray:
    """(T, 468, 3) meshes and their (T, 3) yaw, pitch, roll in degrees (``talkbench.faces.pose.head_pose``) →
    (T, 6) ``pose6``: the angles in radians, centroid x / width, centroid y / width, log(RMS radius in x, y /
    width); NaN rows where no face."""
    out = np.full((len(meshes), 6), np.nan)
    out[:, :3] = np.radians(angles_deg)
    xy = meshes[..., :2]
    centre = xy.mean(1)
    radius = np.sqrt(((xy - centre[:, None]) ** 2).sum(-1).mean(1))
    out[:, 3:5] = centre / width
    out[:, 5] = np.log(radius / width)
    return out


def _stack(column, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """A (nested) fixed-size list column → (N, *shape) array."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    while pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type):
        arr = arr.flatten()
    return arr.to_numpy(zero_copy_only=False).astype(dtype).reshape(-1, *shape)


def load_targets(folder: str | Path, clip_id: str) -> dict[str, np.ndarray]:
    """Plain arrays of one clip: expression (T, E), expression_valid (T,), pose6 (T, 6), pose_valid (T,),
    body (T, 25, 3), body_visibility (T, 25), hands (T, 2, 21, 3), hand_present (T, 2), hand_score (T, 2)."""
    import pyarrow.compute as pc

    from .io import read_table

    folder = Path(folder)
    out: dict[str, np.ndarray] = {}

    def rows(name):
        table = read_table(folder / f"{name}.parquet", name)
        return table.filter(pc.equal(table["clip_id"], clip_id)).sort_by("frame")

    t = rows("expression")
    out["expression"] = np.array(t["coeffs"].to_pylist(), np.float32)
    out["expression_valid"] = t["valid"].to_numpy(zero_copy_only=False)
    t = rows("head_pose")
    out["pose6"] = _stack(t["pose6"], (6,))
    out["pose_valid"] = t["valid"].to_numpy(zero_copy_only=False)
    t = rows("body_keypoints")
    out["body"] = _stack(t["points"], (BODY_JOINTS, 3))
    out["body_visibility"] = _stack(t["visibility"], (BODY_JOINTS,))
    t = rows("hand_keypoints")
    out["hands"] = _stack(t["points"], (2, HAND_JOINTS, 3))
    out["hand_present"] = _stack(t["present"], (2,), bool)
    out["hand_score"] = _stack(t["score"], (2,))
    return out
