"""The ``upper-body`` curation profile (ChatAnyone-style data): a portrait 2:3 crop holding head, shoulders and hands.

The profile is config, not a fork of the pipeline: ``PROFILES["upper-body"]`` is a set of overrides of
``CurationConfig`` (its ``upper_body`` section switched on, a smaller face floor, because the face is a fraction of an
upper-body frame), and the pipeline adds the steps below when ``upper_body.enabled`` is set:

- ``BodyStep`` measures, on frames sampled at ``upper_body.sample_fps``, MediaPipe Pose (33 landmarks) and MediaPipe
  Hands (both ship their models in the mediapipe 0.10.21 wheel): the fraction of samples with a visible torso (both
  shoulders seen and inside the frame), the fraction with at least one hand of this person, and the 2:3 crop that
  holds the face, the shoulders and every hand seen over the clip;
- three filters: ``TorsoVisible`` (``no_torso``), ``HandsVisible`` (``too_few_hand_frames``) and
  ``PortraitCropInside`` (``portrait_crop_outside_frame``), each recording its measured value and threshold;
- ``PortraitExportStep`` writes the crop at ``upper_body.width``×``upper_body.height`` (512×768) and at half size
  (256×384) beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MediaError
from ..runtime import Step
from .filters import CandidateFilter

# MediaPipe Pose landmark indices (33-point topology).
POSE_LEFT_SHOULDER, POSE_RIGHT_SHOULDER = 11, 12  # subject's left / right
UPPER_BODY_JOINTS = 25  # Pose landmarks 0..24: face, shoulders, elbows, wrists, hand points, hips
MAX_BODY_SIDE = 1280  # pose/hands run on frames downscaled to this longer side


@dataclass(frozen=True)
class UpperBodyConfig:
    enabled: bool = False  # the default profile leaves the pipeline as it was
    sample_fps: float = 5.0  # frames per second measured by Pose and Hands
    min_visibility: float = 0.5  # Pose landmark visibility for a shoulder to count as seen
    edge_margin: float = 0.03  # a seen shoulder must lie this fraction of the frame inside its border
    min_torso_fraction: float = 0.8  # of samples with both shoulders seen
    min_hands_fraction: float = 0.3  # of samples with at least one hand of this person
    hand_confidence: float = 0.5  # MediaPipe Hands min_detection_confidence
    hand_reach: float = 3.5  # a hand belongs to the tracked person within this many face sizes of the face centre
    head_room: float = 0.35  # crop margin above the face box, × median face size
    side_margin: float = 0.1  # crop margin beside and below the content, × median face size
    min_crop_faces: float = 3.5  # the crop is at least this many face sizes tall
    max_outside: float = 0.05  # largest part of the crop allowed outside the frame (fraction of its height), padded
    width: int = 512  # export size (2:3); a half-size copy is written too
    height: int = 768
    expression_components: int = 16  # PCA components of the face-mesh expression basis (extract-targets)

    def __post_init__(self):
        if self.width * 3 != self.height * 2:
            raise ValueError(f"upper_body.width × height must be 2:3, got {self.width}×{self.height}")


# Named sets of config overrides: `curate build-manifest --profile NAME` applies them after --config, before --set.
PROFILES: dict[str, dict[str, object]] = {
    "default": {},
    "upper-body": {
        "upper_body.enabled": True,
        "filters.min_face_size": 128.0,  # the face fills ~1/4 of a 512×768 upper-body frame
    },
}


def apply_profile(config, name: str):
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {sorted(PROFILES)}")
    return config.with_overrides(PROFILES[name]) if PROFILES[name] else config


# ----------------------------------------------------------------------------------------------- geometry


def portrait_crop(face_box, points: np.ndarray, face_size: float, cfg: UpperBodyConfig) -> tuple[int, int, int, int]:
    """(x0, y0, w, h), h = 1.5 w: the 2:3 box holding the face box and ``points`` (shoulders, hands) with margins.

    Centred on the content horizontally; the top sits ``head_room`` face sizes above the face box (hair), the
    sides and bottom ``side_margin`` face sizes beyond the content; then the box grows to 2:3 and to at least
    ``min_crop_faces`` face sizes tall, downwards.
    """
    margin = cfg.side_margin * face_size
    x0 = min(face_box[0], points[:, 0].min()) - margin
    x1 = max(face_box[2], points[:, 0].max()) + margin
    top = face_box[1] - cfg.head_room * face_size
    bottom = max(face_box[3], points[:, 1].max()) + margin
    h = max(bottom - top, 1.5 * (x1 - x0), cfg.min_crop_faces * face_size)
    w = h / 1.5
    cx = (x0 + x1) / 2
    return int(round(cx - w / 2)), int(round(top)), int(round(w)), int(round(h))


def outside_fraction(x0: int, y0: int, w: int, h: int, width: int, height: int) -> float:
    """The largest part of the box beyond any frame edge, as a fraction of its height."""
    return max(0, -x0, -y0, x0 + w - width, y0 + h - height) / h


# ----------------------------------------------------------------------------------------------- measuring step


class BodyStep(Step):
    """Candidate row → the same row with ``torso_fraction``, ``hands_fraction``, ``body_samples`` and the portrait
    crop (``crop_x0``, ``crop_y0``, ``crop_size`` = width, ``crop_height``, ``crop_padded``).

    Only the detected person's hands count: a hand further than ``hand_reach`` face sizes from the face centre
    belongs to someone else. Samples without a pose keep the torso fraction honest (they count as no torso).
    """

    def __init__(self, cfg: UpperBodyConfig):
        self.cfg = cfg

    @property
    def name(self) -> str:
        return "upper_body"

    def _models(self):
        if getattr(self, "_lazy_models", None) is None:
            from ..faces.detect import require_mediapipe

            mp = require_mediapipe()
            self._lazy_models = (
                mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1),
                mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2,
                                         min_detection_confidence=self.cfg.hand_confidence),
            )
        return self._lazy_models

    def measure(self, frame: np.ndarray, face_centre, face_size: float) -> dict:
        """One sample: torso seen, hands of this person (pixel points), shoulder points."""
        pose, hands = self._models()
        h, w = frame.shape[:2]
        cfg = self.cfg
        out = {"torso": False, "hands": [], "shoulders": []}
        result = pose.process(np.ascontiguousarray(frame))
        if result.pose_landmarks is not None:
            lm = result.pose_landmarks.landmark
            seen = []
            for i in (POSE_LEFT_SHOULDER, POSE_RIGHT_SHOULDER):
                p = lm[i]
                inside = cfg.edge_margin <= p.x <= 1 - cfg.edge_margin and cfg.edge_margin <= p.y <= 1 - cfg.edge_margin
                seen.append(p.visibility >= cfg.min_visibility and inside)
                out["shoulders"].append((p.x * w, p.y * h))
            out["torso"] = all(seen)
        result = hands.process(np.ascontiguousarray(frame))
        for hand in result.multi_hand_landmarks or []:
            pts = np.array([(p.x * w, p.y * h) for p in hand.landmark])
            if np.linalg.norm(pts.mean(0) - face_centre) <= cfg.hand_reach * face_size:
                out["hands"].append(pts)
        return out

    def measure_row(self, row: dict) -> dict:
        from ..media import iter_frames

        fps = float(row["fps"])
        width, height = int(row["frame_width"]), int(row["frame_height"])
        start, end = int(row["start_frame"]), int(row["end_frame"])
        scale = min(1.0, MAX_BODY_SIDE / max(width, height))
        size = None if scale == 1.0 else (int(round(width * scale / 2)) * 2, int(round(height * scale / 2)) * 2)
        boxes = np.array([s["box"] for s in row["samples"]], np.float64)
        face_box = [boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()]
        face_size = float(row["face_size_median"])
        centre = np.median((boxes[:, :2] + boxes[:, 2:]) / 2, axis=0)
        samples = []
        for chunk in iter_frames(row["abs_path"], fps=min(self.cfg.sample_fps, fps), size=size,
                                 start=max(0.0, (start - 0.25) / fps), duration=(end - start) / fps):
            for frame in chunk:
                m = self.measure(frame, centre * scale, face_size * scale)
                m["hands"] = [p / scale for p in m["hands"]]
                m["shoulders"] = [(x / scale, y / scale) for x, y in m["shoulders"]]
                samples.append(m)
        if not samples:
            raise MediaError(f"{row['abs_path']}: no frames decoded between frames {start} and {end}")
        points = [np.array(s["shoulders"]) for s in samples if s["torso"]]
        points += [p for s in samples for p in s["hands"]]
        points = np.concatenate(points) if points else np.array(face_box, np.float64).reshape(2, 2)
        x0, y0, w, h = portrait_crop(face_box, points, face_size, self.cfg)
        outside = outside_fraction(x0, y0, w, h, width, height)
        return {
            "torso_fraction": round(sum(s["torso"] for s in samples) / len(samples), 4),
            "hands_fraction": round(sum(bool(s["hands"]) for s in samples) / len(samples), 4),
            "body_samples": len(samples),
            "crop_x0": x0, "crop_y0": y0, "crop_size": w, "crop_height": h,
            "crop_padded": bool(outside > 0), "crop_outside": round(outside, 4),
        }

    def run(self, rows, rank=0, world_size=1):
        for row in rows:
            measured = self.measure_row(row)
            self.count("samples", measured["body_samples"])
            yield {**row, **measured}


# ----------------------------------------------------------------------------------------------- filters


class TorsoVisible(CandidateFilter):
    """Both shoulders seen (visibility ≥ ``min_visibility``, inside the frame) on enough samples."""

    reason = "no_torso"

    def __init__(self, min_fraction: float):
        self.min_fraction = float(min_fraction)

    def filter(self, row):
        value = float(row["torso_fraction"])
        return True if value >= self.min_fraction else (False, self.reason, value, self.min_fraction)


class HandsVisible(CandidateFilter):
    """At least one hand of the tracked person on enough samples (the per-clip hands fraction)."""

    reason = "too_few_hand_frames"

    def __init__(self, min_fraction: float):
        self.min_fraction = float(min_fraction)

    def filter(self, row):
        value = float(row["hands_fraction"])
        return True if value >= self.min_fraction else (False, self.reason, value, self.min_fraction)


class PortraitCropInside(CandidateFilter):
    """The 2:3 crop may leave the frame by at most ``max_outside`` of its height (that part is padded black):
    a landscape or tight frame that cannot hold head, shoulders and hands is refused, not squeezed."""

    reason = "portrait_crop_outside_frame"

    def __init__(self, max_outside: float):
        self.max_outside = float(max_outside)

    def filter(self, row):
        value = float(row["crop_outside"])
        return True if value <= self.max_outside else (False, self.reason, value, self.max_outside)


def upper_body_steps(config) -> list[Step]:
    """The profile's measuring step and filters, run after the standard filters; [] when the profile is off."""
    cfg = config.upper_body
    if not cfg.enabled:
        return []
    return [BodyStep(cfg), TorsoVisible(cfg.min_torso_fraction), HandsVisible(cfg.min_hands_fraction),
            PortraitCropInside(cfg.max_outside)]


# ----------------------------------------------------------------------------------------------- export


def crop_portrait(frame: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """The (h, w) box of a frame, black where it leaves the frame."""
    import cv2

    fh, fw = frame.shape[:2]
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(fw, x0 + w), min(fh, y0 + h)
    if ix1 <= ix0 or iy1 <= iy0:
        raise MediaError(f"crop ({x0}, {y0}, {w}×{h}) does not overlap the {fw}×{fh} frame")
    box = frame[iy0:iy1, ix0:ix1]
    pads = (iy0 - y0, y0 + h - iy1, ix0 - x0, x0 + w - ix1)
    if any(pads):
        box = cv2.copyMakeBorder(box, *pads, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return np.ascontiguousarray(box)


def export_portrait(row: dict, out_dir, cfg: UpperBodyConfig, crf: int = 18, audio_rate: int = 16000) -> dict:
    """Write clips/<clip_id>.mp4 at width×height and clips/<clip_id>.<w/2>x<h/2>.mp4; the clip row's media columns."""
    import cv2
    from pathlib import Path

    from ..media import iter_frames, read_audio, sha256_file, write_video
    from .export import count_frames

    out_dir = Path(out_dir)
    fps = float(row["fps"])
    start, end = int(row["start_frame"]), int(row["end_frame"])
    n, dur = end - start, (end - start) / fps
    x0, y0, w, h = int(row["crop_x0"]), int(row["crop_y0"]), int(row["crop_size"]), int(row["crop_height"])
    sizes = [(cfg.width, cfg.height), (cfg.width // 2, cfg.height // 2)]
    big, small = [], []
    for chunk in iter_frames(row["abs_path"], start=max(0.0, (start - 0.25) / fps), duration=dur):
        for frame in chunk:
            box = crop_portrait(frame, x0, y0, w, h)
            interp = cv2.INTER_AREA if w >= sizes[0][0] else cv2.INTER_CUBIC
            big.append(cv2.resize(box, sizes[0], interpolation=interp))
            small.append(cv2.resize(big[-1], sizes[1], interpolation=cv2.INTER_AREA))
    big, small = big[:n], small[:n]
    if len(big) != n:
        raise MediaError(f"{row['abs_path']}: expected {n} frames for clip {row['clip_id']}, decoded {len(big)}")
    audio = read_audio(row["abs_path"], audio_rate, start=start / fps, duration=dur) if row.get("has_audio") else None
    if audio is not None and len(audio) < int(round(dur * audio_rate)):
        audio = np.concatenate([audio, np.zeros(int(round(dur * audio_rate)) - len(audio), np.float32)])
    media = {}
    for frames, (sw, sh), key in ((big, sizes[0], "path"), (small, sizes[1], "path_small")):
        # <clip_id>.<w>x<h>.mp4: the stem stays the clip id, so the stale-media sweep keeps it
        rel = Path("clips") / (f"{row['clip_id']}.mp4" if key == "path" else f"{row['clip_id']}.{sw}x{sh}.mp4")
        write_video(out_dir / rel, np.stack(frames), fps, audio=audio, audio_rate=audio_rate, crf=crf)
        if count_frames(out_dir / rel) != n:
            raise MediaError(f"{out_dir / rel}: expected {n} frames after encoding")
        media[key] = rel.as_posix()
        if key == "path":
            media["sha256"] = sha256_file(out_dir / rel)
    media.update(n_frames=n, size=cfg.width, height=cfg.height, has_audio=audio is not None and len(audio) > 0,
                 frames_dir=None, wav_path=None)
    return media


class PortraitExportStep(Step):
    """Selected clip row → the row with its exported media columns, at 512×768 and 256×384."""

    def __init__(self, cfg: UpperBodyConfig, crf: int = 18, audio_rate: int = 16000):
        self.cfg, self.crf, self.audio_rate = cfg, crf, audio_rate

    @property
    def name(self) -> str:
        return "export"

    def run(self, rows, rank=0, world_size=1):
        for row in rows:
            try:
                media = export_portrait(row, row["out_dir"], self.cfg, self.crf, self.audio_rate)
            except MediaError as exc:
                self.reject(row["clip_id"], "export_failed", source_id=row.get("source_id"), error=str(exc))
                continue
            self.count("frames", media["n_frames"])
            yield {**row, **media}


def export_step_for(config, audio_rate: int):
    """The export step of a config: the portrait export under the upper-body profile, else the square one."""
    from .export import ExportStep

    if config.upper_body.enabled:
        return PortraitExportStep(config.upper_body, config.export.crf, audio_rate)
    return ExportStep(config.export, audio_rate)


__all__ = ["BodyStep", "HandsVisible", "PROFILES", "PortraitCropInside", "PortraitExportStep", "TorsoVisible",
           "UpperBodyConfig", "apply_profile", "crop_portrait", "export_step_for", "outside_fraction",
           "portrait_crop", "upper_body_steps"]
