"""Arrow schemas of the Parquet files that cross stage boundaries.

Every file carries its table name and ``SCHEMA_VERSION`` in the Parquet key-value metadata, so a reader can refuse
a file written for another table or another version with one clear line. Columns may be added in later versions;
a bump of ``SCHEMA_VERSION`` is required when a column changes meaning or type.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"

SPAN = pa.struct(
    [
        pa.field("index", pa.int32()),  # position of the span in the source list (HDTF's name_<index>.mp4)
        pa.field("start", pa.float64()),  # seconds; null = from the start of the video
        pa.field("end", pa.float64()),  # seconds; null = to the end of the video
        pa.field("crop_x", pa.int32()),  # HDTF crop_wh: min_width (pixels at ref resolution)
        pa.field("crop_w", pa.int32()),
        pa.field("crop_y", pa.int32()),
        pa.field("crop_h", pa.int32()),
        pa.field("crop_ratio", pa.float64()),  # HDTF crop_ratio: zoom scale of the crop window
    ]
)

SEGMENT = pa.struct(
    [
        pa.field("index", pa.int32()),  # span index this segment was cut from (0 when the whole video is used)
        pa.field("start", pa.float64()),  # seconds in the source
        pa.field("end", pa.float64()),
        pa.field("path", pa.string()),  # normalised mp4, relative to the manifest's folder
        pa.field("n_frames", pa.int32()),  # decoded frame count of the normalised file
        pa.field("expected_frames", pa.int32()),  # round((end - start) * fps)
        pa.field("sha256", pa.string()),
        pa.field("status", pa.string()),  # ok | failed
        pa.field("error_message", pa.string()),
    ]
)

SOURCES = pa.schema(
    [
        pa.field("source_id", pa.string(), nullable=False),  # sanitised, unique, safe as a file name
        pa.field("dataset", pa.string()),  # hdtf | table | folder
        pa.field("platform", pa.string()),  # youtube | http | local
        pa.field("video_id", pa.string()),  # the id exactly as the list gives it
        pa.field("url", pa.string()),
        pa.field("local_path", pa.string()),
        pa.field("spans", pa.list_(SPAN)),
        pa.field("ref_width", pa.int32()),
        pa.field("ref_height", pa.int32()),
        pa.field("source_label", pa.string()),  # identity label from the source (HDTF name, person id)
        pa.field("licence", pa.string()),
        pa.field("list_file", pa.string()),  # provenance: which list and line produced the row
        pa.field("list_line", pa.int32()),
    ]
)

VIDEOS = pa.schema(
    [
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string()),
        pa.field("platform", pa.string()),
        pa.field("video_id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("source_label", pa.string()),
        pa.field("licence", pa.string()),
        pa.field("status", pa.string()),  # ok | failed | rejected
        pa.field("error_class", pa.string()),  # unavailable|private|bot_check|rate_limited|geo|format|network|corrupt|other
        pa.field("error_message", pa.string()),  # the first real error, never replaced by a later one
        pa.field("attempts", pa.int32()),
        pa.field("download_path", pa.string()),  # relative to the manifest folder
        pa.field("sha256", pa.string()),  # of the downloaded (or linked) file
        pa.field("size_bytes", pa.int64()),
        # probe of the downloaded file
        pa.field("container", pa.string()),
        pa.field("video_codec", pa.string()),
        pa.field("pix_fmt", pa.string()),
        pa.field("bit_depth", pa.int32()),
        pa.field("width", pa.int32()),  # coded size, before rotation
        pa.field("height", pa.int32()),
        pa.field("rotation", pa.int32()),  # degrees from display-matrix metadata
        pa.field("avg_fps", pa.float64()),
        pa.field("real_fps", pa.float64()),  # r_frame_rate
        pa.field("is_vfr", pa.bool_()),
        pa.field("duration", pa.float64()),
        pa.field("n_frames", pa.int64()),
        pa.field("has_audio", pa.bool_()),
        pa.field("audio_codec", pa.string()),
        pa.field("audio_rate", pa.int32()),
        pa.field("audio_channels", pa.int32()),
        # normalisation (constant fps, 16 kHz mono, rotation applied)
        pa.field("norm_fps", pa.float64()),
        pa.field("norm_audio_rate", pa.int32()),
        pa.field("norm_width", pa.int32()),  # displayed size after rotation
        pa.field("norm_height", pa.int32()),
        pa.field("segments", pa.list_(SEGMENT)),
        pa.field("config_hash", pa.string()),
        pa.field("pipeline_version", pa.string()),
    ]
)

CLIPS = pa.schema(
    [
        # ids
        pa.field("clip_id", pa.string(), nullable=False),  # uuid5(source_id, start_pts, end_pts, config_hash)
        pa.field("source_id", pa.string(), nullable=False),  # the source video id (sanitised)
        pa.field("segment_index", pa.int32()),
        pa.field("track_id", pa.int32()),
        pa.field("identity_id", pa.string()),
        pa.field("source_label", pa.string()),
        pa.field("identity_score", pa.float64()),  # cosine similarity of the track to its identity centroid
        # timing (normalised video time base)
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("start_frame", pa.int32()),
        pa.field("end_frame", pa.int32()),  # exclusive
        pa.field("fps", pa.float64()),
        pa.field("n_frames", pa.int32()),
        # geometry (pixels of the normalised source frame)
        pa.field("crop_x0", pa.int32()),
        pa.field("crop_y0", pa.int32()),
        pa.field("crop_size", pa.int32()),
        pa.field("crop_margin", pa.float64()),
        pa.field("crop_padded", pa.bool_()),
        pa.field("face_size_median", pa.float64()),
        pa.field("face_size_min", pa.float64()),
        pa.field("face_size_max", pa.float64()),
        pa.field("yaw_max", pa.float64()),  # max |yaw| over the clip, degrees
        pa.field("yaw_mean", pa.float64()),
        pa.field("pitch_max", pa.float64()),
        pa.field("pitch_mean", pa.float64()),
        pa.field("roll_max", pa.float64()),
        pa.field("roll_mean", pa.float64()),
        pa.field("sharpness", pa.float64()),
        # provenance
        pa.field("detector_backend", pa.string()),
        pa.field("detector_model", pa.string()),
        pa.field("identity_backend", pa.string()),
        pa.field("identity_model", pa.string()),
        pa.field("config_hash", pa.string()),
        pa.field("pipeline_version", pa.string()),
        # media
        pa.field("path", pa.string()),  # exported mp4, relative to the manifest folder
        pa.field("frames_dir", pa.string()),  # optional PNG frames
        pa.field("wav_path", pa.string()),  # optional WAV
        pa.field("size", pa.int32()),  # output side (256 or 512)
        pa.field("sha256", pa.string()),
        pa.field("has_audio", pa.bool_()),
        pa.field("split", pa.string()),  # train | test
        # upper-body profile (null otherwise): the crop is crop_size wide × crop_height tall, exported size × height
        pa.field("crop_height", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("path_small", pa.string()),  # the half-size copy (256×384)
        pa.field("torso_fraction", pa.float64()),  # of sampled frames with both shoulders seen
        pa.field("hands_fraction", pa.float64()),  # of sampled frames with a hand of this person
    ]
)

REJECTIONS = pa.schema(
    [
        pa.field("stage", pa.string(), nullable=False),  # the step that dropped the row
        pa.field("item_id", pa.string(), nullable=False),  # source_id, segment or candidate clip id
        pa.field("source_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("value", pa.float64()),  # the measured value that failed, when there is one
        pa.field("threshold", pa.float64()),
        pa.field("detail", pa.string()),  # JSON with anything else worth keeping
    ]
)

RESULTS = pa.schema(
    [
        pa.field("protocol_id", pa.string(), nullable=False),
        pa.field("protocol_digest", pa.string(), nullable=False),  # EvalProtocol.digest: two definitions under one id never mix
        pa.field("protocol_standard", pa.bool_()),  # false when a non-official (unverified) weights file was used
        pa.field("method", pa.string(), nullable=False),
        pa.field("task", pa.string()),
        pa.field("split", pa.string()),
        pa.field("manifest_sha256", pa.string()),  # the clips manifest scored (bench run); null for `metrics compute`
        pa.field("clip_set", pa.string()),  # sha256 of the sorted clip ids the run scored: tables compare equal sets
        pa.field("clip_id", pa.string()),  # null for set-level metrics (FID, FVD) computed over all clips
        pa.field("metric", pa.string(), nullable=False),
        pa.field("value", pa.float64()),  # null when the metric could not run
        pa.field("null_reason", pa.string()),
        pa.field("n", pa.int64()),  # frames (or clips, for set-level metrics) the value is computed from
        pa.field("flags", pa.string()),  # comma-separated, e.g. "fid_below_2048_samples"
        pa.field("weights", pa.string()),  # JSON {entry: sha256} of every feature network used
        pa.field("talkbench_version", pa.string()),
        pa.field("extra", pa.string()),  # JSON: resampling applied, detection failure rate, ...
    ]
)

# Written by `talkbench extract-motion`: per-clip motion latents, the input of an audio-to-motion model.
MOTION_LATENTS = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("identity_id", pa.string()),
        pa.field("split", pa.string()),
        pa.field("fps", pa.float64()),
        pa.field("n_frames", pa.int32()),
        pa.field("motion", pa.list_(pa.list_(pa.float32()))),  # (T, motion_dim) codes along the direction basis
        pa.field("identity", pa.list_(pa.float32())),  # (style_dim,) mean identity embedding over the clip's frames
        pa.field("checkpoint_sha", pa.string()),  # sha256 of the checkpoint file that produced the latents
        pa.field("checkpoint_step", pa.int64()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "sources": SOURCES,
    "videos": VIDEOS,
    "clips": CLIPS,
    "rejections": REJECTIONS,
    "results": RESULTS,
    "motion_latents": MOTION_LATENTS,
}

# Rows are sorted by these columns before writing, so reruns give byte-identical files.
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "sources": ("source_id",),
    "videos": ("source_id",),
    "clips": ("clip_id",),
    "rejections": ("stage", "item_id", "reason"),
    "results": ("method", "task", "metric", "clip_id"),
    "motion_latents": ("clip_id",),
}


def table_schema(name: str) -> pa.Schema:
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; choose from {sorted(TABLES)}")
    return TABLES[name]
