"""Per-frame variance-adapter targets of the audio→motion model: head pose, face location and face scale.

AniTalker's definitions (68-point landmarks, 3DDFA pose) adapted to MediaPipe Face Mesh (468 points):
- pose: (yaw, pitch, roll) in degrees from the mesh (``faces.pose.head_pose``), clipped to ±90, ÷ 90;
- location: x of the nose tip ÷ image width — mesh index 1 stands for 68-point landmark 30;
- scale: ‖midpoint(inner brow ends) − chin‖ ÷ image height — mesh 55 / 285 stand for landmarks 21 / 22, mesh 152
  for landmark 8;
- lip_gap (not an adapter target): the inner-lip gap over the inter-ocular distance (``faces.points.lip_gap``), read by
  the audio→motion trainer to find the mouth direction of the motion codes (``--mouth-weight``, the ``mouth_stretch``
  presets such as tiny-talk).
Frames without a face are filled by linear interpolation from their neighbours and counted; a clip without any face
is refused. Landmarks and pose come from the shared ``talkbench.faces`` module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MediaError

from ..faces.points import MESH_CHIN, MESH_NOSE

MESH_BROW_INNER = (55, 285)  # inner ends of the subject's right / left eyebrow (68-point landmarks 21 / 22)
TARGETS_TABLE, TARGETS_VERSION = "motion_targets", "2"  # 2: + lip_gap
MOTION_TARGETS = pa.schema([
    pa.field("clip_id", pa.string(), nullable=False),
    pa.field("split", pa.string()),
    pa.field("n_frames", pa.int32()),
    pa.field("pose", pa.list_(pa.list_(pa.float32()))),  # (T, 3) yaw, pitch, roll ÷ 90
    pa.field("location", pa.list_(pa.float32())),  # (T,)
    pa.field("scale", pa.list_(pa.float32())),  # (T,)
    pa.field("lip_gap", pa.list_(pa.float32())),  # (T,) inner-lip gap ÷ inter-ocular distance
    pa.field("missing_frames", pa.int32()),  # frames without a face, interpolated
    pa.field("landmarks", pa.string()),  # which detector made them
])


def face_landmarks(frames: np.ndarray) -> np.ndarray:
    """(T, 468, 3) Face Mesh landmarks in pixels; NaN rows where no face was found."""
    from ..faces.detect import mesh_landmarks

    return mesh_landmarks(frames)


def _fill_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    idx = np.arange(len(values))
    out = values.copy()
    for c in range(values.shape[1]):
        out[:, c] = np.interp(idx, idx[found], values[found, c])
    return out


def targets_from_landmarks(mesh: np.ndarray, width: int, height: int) -> dict[str, np.ndarray]:
    """{pose (T, 3), location (T, 1), scale (T, 1), lip_gap (T, 1), missing (int)} from (T, 468, 3) mesh
    landmarks."""
    from ..faces.points import lip_gap
    from ..faces.pose import head_pose

    found = ~np.isnan(mesh[:, 0, 0])
    if not found.any():
        raise MediaError(f"no face found in any of the {len(mesh)} frames")
    pose = head_pose(mesh)  # (T, 3) degrees, NaN rows where no face
    brow = mesh[:, list(MESH_BROW_INNER), :2].mean(1)
    scale = np.linalg.norm(brow - mesh[:, MESH_CHIN, :2], axis=1)[:, None] / height
    location = mesh[:, MESH_NOSE, :1] / width
    pose = np.clip(np.nan_to_num(pose), -90, 90) / 90  # NaN rows are refilled below
    return {"pose": _fill_missing(pose, found).astype(np.float32),
            "location": _fill_missing(location, found).astype(np.float32),
            "scale": _fill_missing(scale, found).astype(np.float32),
            "lip_gap": _fill_missing(np.nan_to_num(lip_gap(mesh))[:, None], found).astype(np.float32),
            "missing": int((~found).sum())}


def extract_targets(manifest: str | Path, out: str | Path, split: str | None = None, size: int = 256) -> pa.Table:
    """Pose / location / scale per frame of every clip of a manifest (decoded at ``size``), to Parquet."""
    from ..manifests import atomic_write_bytes, read_table
    from .data import decode_clip

    manifest = Path(manifest)
    rows = read_table(manifest, "clips").to_pylist()
    if split is not None:
        rows = [r for r in rows if r.get("split") == split]
    records = []
    for row in sorted(rows, key=lambda r: r["clip_id"]):
        frames = decode_clip(row, manifest.parent, size)
        try:
            tg = targets_from_landmarks(face_landmarks(frames), frames.shape[2], frames.shape[1])
        except MediaError as exc:
            raise MediaError(f"clip {row['clip_id']}: {exc}") from exc
        records.append({"clip_id": row["clip_id"], "split": row.get("split"), "n_frames": len(frames),
                        "pose": tg["pose"].tolist(), "location": tg["location"][:, 0].tolist(),
                        "scale": tg["scale"][:, 0].tolist(), "lip_gap": tg["lip_gap"][:, 0].tolist(),
                        "missing_frames": tg["missing"],
                        "landmarks": "mediapipe-face-mesh-468"})
    table = pa.Table.from_pylist(records, schema=MOTION_TARGETS).replace_schema_metadata(
        {b"talkbench.table": TARGETS_TABLE.encode(), b"talkbench.schema_version": TARGETS_VERSION.encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=False)
    atomic_write_bytes(out, sink.getvalue().to_pybytes())
    return table


def read_targets(path: str | Path) -> pa.Table:
    from ..errors import ManifestError

    table = pq.read_table(path)
    if (table.schema.metadata or {}).get(b"talkbench.table") != TARGETS_TABLE.encode():
        raise ManifestError(f"{path}: not a {TARGETS_TABLE} file")
    return table
