"""Per-frame motion targets of curated upper-body clips (``talkbench extract-targets``).

For every clip of a manifest, every frame of its exported video goes through the MediaPipe face mesh (the shared
``talkbench.faces`` helpers), MediaPipe Pose and MediaPipe Hands. From the meshes:

- the **expression basis**: each frame's mesh is Procrustes-aligned (3-D similarity: rotation, uniform scale,
  translation) to a reference refined over three rounds (generalised Procrustes), so head pose is removed; a PCA of the
  aligned meshes of the TRAIN split gives ``upper_body.expression_components`` components, each signed so its largest
  entry is positive (reruns give the same basis);
- **expression coefficients**: the aligned mesh minus the mean, projected on the components;
- **head pose 6-D**: the rotation of ``talkbench.faces.pose`` and a translation (see ``manifests/targets.py``).

Tables are written with ``write_table`` (atomic, validated, sorted), so a rerun gives byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ManifestError, MediaError
from ..manifests.targets import (BODY_JOINTS, HAND_JOINTS, HAND_SLOTS, MESH_POINTS, expression_coefficients,
                                 pose6_from_mesh, similarity_align)
from .upper_body import UpperBodyConfig

PROCRUSTES_ROUNDS = 3
HAND_SLOT = {label: i for i, label in enumerate(HAND_SLOTS)}  # MediaPipe handedness label → slot


# ----------------------------------------------------------------------------------------------- per-frame landmarks


@dataclass
class FrameLandmarks:
    """Raw landmarks of a clip's frames, in frame pixels (z in the x scale); NaN where nothing was found."""

    width: int
    height: int
    mesh: np.ndarray  # (T, 468, 3)
    body: np.ndarray  # (T, 25, 3)
    body_visibility: np.ndarray  # (T, 25)
    hands: np.ndarray  # (T, 2, 21, 3)
    hand_score: np.ndarray  # (T, 2), 0 where absent


def detect_landmarks(frames: np.ndarray, hand_confidence: float = 0.5) -> FrameLandmarks:
    """Face mesh, Pose (landmarks 0..24) and Hands on every frame, each frame on its own (static image mode)."""
    from ..faces.detect import mesh_landmarks, require_mediapipe

    mp = require_mediapipe()
    t, h, w = frames.shape[:3]
    body = np.full((t, BODY_JOINTS, 3), np.nan)
    vis = np.zeros((t, BODY_JOINTS))
    hands = np.full((t, 2, HAND_JOINTS, 3), np.nan)
    score = np.zeros((t, 2))
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose, \
            mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2,
                                     min_detection_confidence=hand_confidence) as hand_model:
        for i, frame in enumerate(frames):
            frame = np.ascontiguousarray(frame)
            result = pose.process(frame)
            if result.pose_landmarks is not None:
                lm = result.pose_landmarks.landmark[:BODY_JOINTS]
                body[i] = [(p.x * w, p.y * h, p.z * w) for p in lm]
                vis[i] = [p.visibility for p in lm]
            result = hand_model.process(frame)
            for lm, handed in zip(result.multi_hand_landmarks or [], result.multi_handedness or []):
                c = handed.classification[0]
                slot = HAND_SLOT[c.label]
                if c.score > score[i, slot]:
                    score[i, slot] = c.score
                    hands[i, slot] = [(p.x * w, p.y * h, p.z * w) for p in lm.landmark]
    return FrameLandmarks(w, h, mesh_landmarks(frames), body, vis, hands, score)


# ----------------------------------------------------------------------------------------------- expression basis


def _normalise(mesh: np.ndarray) -> np.ndarray:
    c = mesh - mesh.mean(0)
    return c / np.sqrt((c ** 2).sum(1).mean())


def procrustes_reference(meshes: np.ndarray) -> np.ndarray:
    """Generalised Procrustes: start from the first mesh, align all, average, renormalise; ``PROCRUSTES_ROUNDS``."""
    ref = _normalise(meshes[0])
    for _ in range(PROCRUSTES_ROUNDS):
        ref = _normalise(np.mean([similarity_align(m, ref) for m in meshes], axis=0))
    return ref


@dataclass
class ExpressionBasis:
    mean: np.ndarray  # (468, 3) mean aligned mesh (unit RMS radius)
    components: np.ndarray  # (E, 1404) orthonormal rows
    variance: np.ndarray  # (E,)
    n_frames: int

    def coefficients(self, meshes: np.ndarray) -> np.ndarray:
        """(T, 468, 3) meshes (NaN rows: no face) → (T, E) coefficients (NaN rows kept)."""
        return expression_coefficients(meshes, self.mean, self.components)


def fit_expression_basis(meshes: np.ndarray, n_components: int) -> ExpressionBasis:
    """PCA of pose-removed meshes (N, 468, 3), frames without a face (NaN) skipped."""
    meshes = np.asarray(meshes, np.float64)
    meshes = meshes[~np.isnan(meshes[:, 0, 0])]
    if len(meshes) <= n_components:
        raise ConfigError(f"the expression basis needs more training frames with a face than its "
                          f"{n_components} components; found {len(meshes)}")
    ref = procrustes_reference(meshes)
    aligned = np.stack([similarity_align(m, ref) for m in meshes]).reshape(len(meshes), -1)
    mean = aligned.mean(0)
    centred = aligned - mean
    if len(centred) < centred.shape[1]:  # fewer frames than coordinates: the thin SVD is the cheaper route
        _, sing, vt = np.linalg.svd(centred, full_matrices=False)
        values, comps = sing[:n_components] ** 2 / (len(centred) - 1), vt[:n_components]
    else:
        values, vectors = np.linalg.eigh(centred.T @ centred / (len(centred) - 1))
        order = np.argsort(values)[::-1][:n_components]
        values, comps = values[order], vectors[:, order].T
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])
    return ExpressionBasis(mean.reshape(MESH_POINTS, 3), comps * signs[:, None], values, len(meshes))


# ----------------------------------------------------------------------------------------------- head pose 6-D


def pose6(meshes: np.ndarray, width: int) -> np.ndarray:
    """(T, 468, 3) → (T, 6): yaw, pitch, roll (radians, ``talkbench.faces.pose``), centroid x / width,
    centroid y / width, log(RMS radius in x, y / width); NaN rows where no face."""
    from ..faces.pose import head_pose

    return pose6_from_mesh(meshes, width, head_pose(meshes))


# ----------------------------------------------------------------------------------------------- tables


def _f32(a: np.ndarray) -> list:
    return np.asarray(a, np.float32).tolist()


def target_rows(clip_id: str, lm: FrameLandmarks, coeffs: np.ndarray) -> dict[str, list[dict]]:
    w = lm.width
    p6 = pose6(lm.mesh, w)
    rows: dict[str, list[dict]] = {"expression": [], "head_pose": [], "body_keypoints": [], "hand_keypoints": []}
    for i in range(len(lm.mesh)):
        face = not np.isnan(lm.mesh[i, 0, 0])
        rows["expression"].append({"clip_id": clip_id, "frame": i, "coeffs": _f32(coeffs[i]), "valid": face})
        rows["head_pose"].append({"clip_id": clip_id, "frame": i, "pose6": _f32(p6[i]), "valid": face})
        rows["body_keypoints"].append({"clip_id": clip_id, "frame": i, "points": _f32(lm.body[i] / w),
                                       "visibility": _f32(lm.body_visibility[i]),
                                       "valid": bool(not np.isnan(lm.body[i, 0, 0]))})
        rows["hand_keypoints"].append({"clip_id": clip_id, "frame": i, "points": _f32(lm.hands[i] / w),
                                       "present": [bool(s > 0) for s in lm.hand_score[i]],
                                       "score": _f32(lm.hand_score[i])})
    return rows


def basis_rows(basis: ExpressionBasis, fit_split: str, clips_sha256: str) -> list[dict]:
    common = {"n_frames": basis.n_frames, "fit_split": fit_split, "clips_sha256": clips_sha256}
    rows = [{"index": -1, "values": basis.mean.reshape(-1).tolist(), "variance": None, **common}]
    rows += [{"index": k, "values": c.tolist(), "variance": float(v), **common}
             for k, (c, v) in enumerate(zip(basis.components, basis.variance))]
    return rows


def extract_targets(manifest: str | Path, out: str | Path, cfg: UpperBodyConfig, fit_split: str = "train",
                    log=None) -> dict[str, int]:
    """Read DIR/clips.parquet, write the five target tables into ``out``; returns rows written per table.

    Every clip video is checked before anything is written, so a bad manifest leaves ``out`` untouched.
    """
    from ..manifests.io import read_rows, write_table
    from ..media import read_frames, sha256_file

    manifest = Path(manifest)
    clips = sorted(read_rows(manifest, "clips"), key=lambda r: r["clip_id"])
    if not clips:
        raise ManifestError(f"{manifest}: no clips to extract targets from")
    root = manifest.parent
    missing = [c["path"] for c in clips if not c.get("path") or not (root / c["path"]).is_file()]
    if missing:
        raise MediaError(f"{manifest}: {len(missing)} clip video(s) missing, first {missing[0]!r}")
    if not any(c.get("split") == fit_split for c in clips):
        raise ManifestError(f"{manifest}: no clip in the {fit_split!r} split to fit the expression basis on "
                            f"(splits found: {sorted({str(c.get('split')) for c in clips})})")
    landmarks = {}
    for clip in clips:
        if log:
            log(f"landmarks {clip['clip_id']}")
        landmarks[clip["clip_id"]] = detect_landmarks(read_frames(root / clip["path"]), cfg.hand_confidence)
    train = [landmarks[c["clip_id"]].mesh for c in clips if c.get("split") == fit_split]
    basis = fit_expression_basis(np.concatenate(train), cfg.expression_components)
    tables: dict[str, list[dict]] = {"expression": [], "head_pose": [], "body_keypoints": [], "hand_keypoints": []}
    for clip_id, lm in landmarks.items():
        for name, rows in target_rows(clip_id, lm, basis.coefficients(lm.mesh)).items():
            tables[name] += rows
    tables["expression_basis"] = basis_rows(basis, fit_split, sha256_file(manifest))
    out = Path(out)
    for name, rows in tables.items():
        write_table(rows, out / f"{name}.parquet", name)
    return {name: len(rows) for name, rows in tables.items()}
