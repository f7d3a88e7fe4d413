"""The clip stages of ``curate build-manifest``: normalised segments → identity-tagged 256×256 clip dataset.

    segments ─(executor)→ scenes → faces → filters → identity embeddings
             ─(in process, global)→ clustering → select → clip ids
             ─(executor)→ export ─(in process)→ split → clips.parquet, rejections.parquet, report.html

Per-segment and per-clip work runs on the executor, one logging dir per stage under ``DIR/stats/<stage>/`` (so a rerun
skips completed ranks); clustering, selection and the split need every row at once and are cheap, so they run here,
deterministically, on rows sorted by id. ``clip_id = uuid5(CLIP_NAMESPACE, "source_id|start_pts|end_pts|config_hash")``
with pts counted in frames of the 25 fps normalised source, so a rerun (or a rerun after kill -9) writes byte-identical
manifests.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from ..manifests.io import atomic_write_text, write_table
from .config import PIPELINE_VERSION, CurationConfig
from .export import ExportStep
from .identity import EmbedStep, assign_identities, resolve_backend, threshold_for
from .select import select_clips
from .split import assign_split

CLIP_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://talkbench/clips")

# Columns of a clip row that come straight from the candidate row.
CANDIDATE_COLUMNS = (
    "source_id", "segment_index", "track_id", "identity_id", "source_label", "identity_score", "start_s", "end_s",
    "start_frame", "end_frame", "fps", "crop_x0", "crop_y0", "crop_size", "crop_margin", "crop_padded",
    "face_size_median", "face_size_min", "face_size_max", "yaw_max", "yaw_mean", "pitch_max", "pitch_mean",
    "roll_max", "roll_mean", "sharpness", "detector_backend", "detector_model", "identity_backend", "identity_model",
)
MEDIA_COLUMNS = ("path", "frames_dir", "wav_path", "size", "sha256", "has_audio", "n_frames")


def segment_rows(videos: list[dict], out_dir: Path) -> list[dict]:
    """One row per ok segment of every ok video (the contract's segment row), sorted by (source_id, segment_index)."""
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


def _write_summary(stats_dir: Path, name: str, rows_in: int, rows_out: int, dropped: dict, counters: dict) -> dict:
    """Stats of an in-process stage in the executor's summary.json format, for the report's funnel."""
    summary = {"ranks": 0, "rows_in": rows_in, "rows_out": rows_out,
               "steps": [{"name": name, "rows_in": rows_in, "rows_out": rows_out, "seconds": 0.0,
                          "dropped": dict(sorted(dropped.items())), "counters": dict(sorted(counters.items()))}]}
    atomic_write_text(stats_dir / name / "summary.json", json.dumps(summary, indent=1, sort_keys=True))
    return summary


def _dropped(rejections: list[dict]) -> dict:
    out: dict[str, int] = {}
    for r in rejections:
        out[r["reason"]] = out.get(r["reason"], 0) + 1
    return out


def _clean_stale_media(clips_dir: Path, keep: set[str]) -> None:
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


def run_clip_stages(out_dir: Path, videos: list[dict], config: CurationConfig, executor,
                    prior_rejections: list[dict]) -> tuple[list[dict], list[dict]]:
    """Run scenes → faces → filters → identity → select → export → split → report; write the manifests.

    Returns (clip rows as written to DIR/clips.parquet, every rejection as written to DIR/rejections.parquet).
    """
    from .faces import FaceStep
    from .filters import make_filters
    from .scenes import SceneStep

    out_dir = Path(out_dir).resolve()
    stats = out_dir / "stats"
    cfg = config.to_dict()
    config_hash = config.hash()
    rejections = list(prior_rejections)

    # Per-segment stages on the executor; inputs sorted so ranks (and their resume markers) are stable.
    segments = segment_rows(videos, out_dir)
    res = executor.run([SceneStep(config)], segments, stats / "scenes",
                       config={"scenes": cfg["scenes"], "min_duration": cfg["filters"]["min_duration"]},
                       description="scenes")
    rejections += res.rejections
    shots = sorted(res.rows, key=lambda r: (r["source_id"], r["segment_index"], r["shot_index"]))
    res = executor.run([FaceStep(config)], shots, stats / "faces", config={"faces": cfg["faces"]},
                       description="faces")
    rejections += res.rejections
    candidates = sorted(res.rows, key=lambda r: r["candidate_id"])
    res = executor.run(make_filters(config), candidates, stats / "filters", config={"filters": cfg["filters"]},
                       description="filters")
    rejections += res.rejections
    kept = sorted(res.rows, key=lambda r: r["candidate_id"])

    # Identity: embeddings per candidate on the executor, clustering over all of them here.
    backend = resolve_backend(config.identity.backend)
    res = executor.run([EmbedStep(backend)], kept, stats / "identity",
                       config={"identity": cfg["identity"], "backend": backend}, description="identity")
    rejections += res.rejections
    threshold = threshold_for(backend, config.identity.threshold)
    identified = assign_identities(res.rows, threshold)
    n_ids = len({r["identity_id"] for r in identified})
    _write_summary(stats, "cluster", len(res.rows), len(identified), {},
                   {"identities": n_ids, "threshold_x1000": int(round(threshold * 1000))})

    # Select 2–3 clips per identity; everything not chosen is rejected with its reason.
    selected, select_rejections = select_clips(identified, config.select)
    rejections += select_rejections
    _write_summary(stats, "select", len(identified), len(selected), _dropped(select_rejections),
                   {"identities": len({r["identity_id"] for r in selected})})
    for row in selected:
        row["clip_id"] = clip_id_for(row, config_hash)
    selected.sort(key=lambda r: r["clip_id"])

    res = executor.run([ExportStep(config.export, config.acquire.audio_rate)], selected, stats / "export",
                       config={"export": cfg["export"], "config_hash": config_hash}, description="export")
    rejections += res.rejections
    exported = sorted(res.rows, key=lambda r: r["clip_id"])

    split_rows = assign_split(exported, config.split)
    clips = [clip_row(r, config_hash) for r in split_rows]
    clips.sort(key=lambda r: r["clip_id"])
    write_table(clips, out_dir / "clips.parquet", "clips")
    write_table(rejections, out_dir / "rejections.parquet", "rejections")
    _clean_stale_media(out_dir / "clips", {c["clip_id"] for c in clips})

    from .report import build_report

    build_report(out_dir)
    return clips, rejections
