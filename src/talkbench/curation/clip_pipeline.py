"""The rows the clip stages pass along (see ``stages.py`` for the stages themselves): segments in, clip rows out.

``segment_rows`` explodes videos into the segment rows the scene stage reads; ``clip_row`` is the CLIPS manifest row.
``clip_id = uuid5(CLIP_NAMESPACE, "source_id|start_pts|end_pts|config_hash")``
with pts counted in frames of the 25 fps normalised source, so a rerun (or a rerun after kill -9) writes byte-identical
manifests.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from .config import PIPELINE_VERSION

CLIP_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://talkbench/clips")

# Columns of a clip row that come straight from the candidate row.
CANDIDATE_COLUMNS = (
    "source_id", "segment_index", "track_id", "identity_id", "source_label", "identity_score", "start_s", "end_s",
    "start_frame", "end_frame", "fps", "crop_x0", "crop_y0", "crop_size", "crop_margin", "crop_padded",
    "face_size_median", "face_size_min", "face_size_max", "yaw_max", "yaw_mean", "pitch_max", "pitch_mean",
    "roll_max", "roll_mean", "sharpness", "detector_backend", "detector_model", "identity_backend", "identity_model",
    "crop_height", "torso_fraction", "hands_fraction",  # upper-body profile (null otherwise)
)
MEDIA_COLUMNS = ("path", "frames_dir", "wav_path", "size", "sha256", "has_audio", "n_frames", "height", "path_small")


def segment_rows(videos: list[dict], out_dir: str | Path) -> list[dict]:
    """One row per ok segment of every ok video (the contract's segment row), sorted by (source_id, segment_index)."""
    out_dir = Path(out_dir).resolve()
    rows = []
    for video in videos:
        if video.get("status") != "ok":
            continue
        for seg in video.get("segments") or []:
            if seg.get("status") != "ok" or not seg.get("path"):
                continue
            rows.append({
                "source_id": video["source_id"],
                "segment_index": int(seg.get("index") or 0),
                "path": seg["path"],
                "abs_path": str(out_dir / seg["path"]),
                "fps": float(video.get("norm_fps") or 25.0),
                "n_frames": seg.get("n_frames"),
                "has_audio": bool(video.get("has_audio")),
                "source_label": video.get("source_label"),
                "width": video.get("norm_width"),
                "height": video.get("norm_height"),
                "segment_start": float(seg.get("start") or 0.0),
                "out_dir": str(out_dir),
            })
    rows.sort(key=lambda r: (r["source_id"], r["segment_index"]))
    return rows


def clip_id_for(row: dict, config_hash: str) -> str:
    fps = float(row["fps"])
    offset = int(round(float(row.get("segment_start") or 0.0) * fps))  # segment start in frames of the source
    start_pts, end_pts = offset + int(row["start_frame"]), offset + int(row["end_frame"])
    return str(uuid.uuid5(CLIP_NAMESPACE, f"{row['source_id']}|{start_pts}|{end_pts}|{config_hash}"))


def clip_row(row: dict, config_hash: str) -> dict:
    """The CLIPS manifest row of an exported, split candidate."""
    out = {k: row.get(k) for k in CANDIDATE_COLUMNS}
    out.update({k: row.get(k) for k in MEDIA_COLUMNS})
    out.update(clip_id=row["clip_id"], split=row.get("split"), config_hash=config_hash,
               pipeline_version=PIPELINE_VERSION)
    return out


def clean_stale_media(clips_dir: Path, keep: set[str]) -> None:
    """Remove exports of clips no longer in the manifest and temporary folders left by a killed encode."""
    if not clips_dir.is_dir():
        return
    for entry in clips_dir.iterdir():
        if entry.name.startswith(".tbw-") or entry.name.endswith(".tmp"):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            continue
        stem = entry.name.split(".")[0]
        if stem not in keep:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
