"""Face detection on sampled frames, IoU tracking within a shot, per-sample landmarks and head pose.

``FaceStep`` turns one shot row into one candidate row per face track. Frames are decoded at ``faces.sample_fps``
(5 fps by default) so the detector only sees sampled frames; a track is followed between samples by box IoU. Each
track's clip box is the union of its boxes, enlarged by ``faces.crop_margin`` of its side on every side and made
square: the camera stays fixed over the clip (no alignment), so natural head motion is kept.

Backends and the head pose come from ``talkbench.faces`` (shared with the metrics): ``mediapipe`` (BlazeFace
full-range detector + 468-point face mesh; the models ship in the mediapipe 0.10.21 wheel, so it works offline) and
``insightface`` (SCRFD det_10g + 1k3d68 landmarks from the ``buffalo_l`` pack installed through the weights
registry). The pose filter reads the per-sample yaw/pitch/roll measured here by ``talkbench.faces.pose``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..faces.detect import BACKENDS, Detection, make_backend
from ..runtime import Step

__all__ = ["BACKENDS", "Detection", "FaceStep", "iou", "make_backend", "sampled_frame_index", "sharpness",
           "square_crop", "summarise_track", "track_faces"]

# Detection runs on frames whose longer side is at most this (boxes are scaled back to source pixels):
# both detectors resize to ≤ 640 px internally, so decoding 4K at full size would only cost time.
MAX_DETECT_SIDE = 1280


# ----------------------------------------------------------------------------------------------- tracking


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    track_id: int
    samples: list[dict] = field(default_factory=list)
    missed: int = 0


def track_faces(per_sample: list[tuple[int, list[Detection]]], iou_threshold: float = 0.3,
                max_gap_samples: int = 2) -> list[Track]:
    """Greedy IoU tracking over sampled frames: each detection continues the best-overlapping live track.

    A track survives ``max_gap_samples`` samples without a match (a blink of the detector), then ends.
    Every sample also records ``other_face``: the largest other detection's size in that frame.
    """
    tracks: list[Track] = []
    live: list[Track] = []
    for frame, dets in per_sample:
        pairs = sorted(((iou(t.samples[-1]["box"], d.box), ti, di) for ti, t in enumerate(live)
                        for di, d in enumerate(dets)), reverse=True)
        used_t, used_d, matched, seen = set(), set(), {}, set()
        for score, ti, di in pairs:
            if score < iou_threshold or ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            matched[di] = live[ti]
        for di, det in enumerate(dets):
            track = matched.get(di)
            if track is None:
                track = Track(len(tracks))
                tracks.append(track)
                live.append(track)
            others = [d.size for dj, d in enumerate(dets) if dj != di]
            track.samples.append({"frame": int(frame), "box": [round(v, 2) for v in det.box],
                                  "score": round(det.score, 4),
                                  "landmarks5": [[round(x, 2), round(y, 2)] for x, y in det.landmarks5],
                                  "yaw": round(det.yaw, 3), "pitch": round(det.pitch, 3), "roll": round(det.roll, 3),
                                  "other_face": round(max(others), 2) if others else 0.0,
                                  "sharpness": None if det.sharpness is None else round(det.sharpness, 3)})
            track.missed = 0
            seen.add(track.track_id)
        for track in live:
            if track.track_id not in seen:
                track.missed += 1
        live = [t for t in live if t.missed <= max_gap_samples]
    return tracks


def sampled_frame_index(k: int, fps: float, sample_fps: float) -> int:
    """Source frame (from the decode start) of the k-th frame out of ffmpeg's ``fps`` filter.

    The filter rounds each input timestamp to the nearest output slot and emits the last input frame of a slot,
    so slot k holds the last frame i with i·sample_fps/fps < k + ½ (checked against decoded frames in the tests).
    """
    return int(math.ceil((k + 0.5) * fps / sample_fps - 1e-9)) - 1


def square_crop(box, margin: float, width: int, height: int) -> tuple[int, int, int, bool]:
    """(x0, y0, side, padded): the box enlarged by ``margin`` × its longer side on every side, made square.

    The square may leave the frame (``padded``); export pads it, or the crop filter rejects it.
    """
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    side_i = int(round(side))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sx, sy = int(round(cx - side_i / 2)), int(round(cy - side_i / 2))
    padded = sx < 0 or sy < 0 or sx + side_i > width or sy + side_i > height
    return sx, sy, side_i, bool(padded)


def sharpness(frame: np.ndarray, box) -> float:
    """Variance of the Laplacian of the face box, resized to 128 px so faces of any size compare."""
    import cv2

    h, w = frame.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    gray = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    gray = cv2.resize(gray, (128, 128), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def summarise_track(track: Track, shot: dict, margin: float, shot_samples: tuple[int, int]) -> dict:
    """The candidate row of one track (see CURATION_CONTRACT.md)."""
    samples = track.samples
    fps = float(shot["fps"])
    width, height = int(shot["width"]), int(shot["height"])
    boxes = np.array([s["box"] for s in samples])
    union = [boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max()]
    x0, y0, side, padded = square_crop(union, margin, width, height)
    sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    # A track seen at the shot's first (last) sample covers the shot from its start (to its end); otherwise the
    # clip starts (ends) at the first (last) sample where the face was seen, never beyond unseen frames.
    first, last = samples[0]["frame"], samples[-1]["frame"]
    start = int(shot["shot_start_frame"]) if first == shot_samples[0] else first
    end = int(shot["shot_end_frame"]) if last == shot_samples[1] else last + 1
    ratio = max(s["other_face"] / max(sz, 1e-6) for s, sz in zip(samples, sizes))
    sharp = [s["sharpness"] for s in samples if s.get("sharpness") is not None]
    row = dict(shot)
    row.update(
        candidate_id=f"{shot['source_id']}/{shot['segment_index']}/{shot['shot_index']}/{track.track_id}",
        track_id=track.track_id, start_frame=int(start), end_frame=int(end),
        start_s=round(start / fps, 6), end_s=round(end / fps, 6), frame_width=width, frame_height=height,
        samples=samples, crop_x0=x0, crop_y0=y0, crop_size=side, crop_margin=float(margin), crop_padded=padded,
        face_size_median=float(np.median(sizes)), face_size_min=float(sizes.min()), face_size_max=float(sizes.max()),
        second_face_ratio=round(float(ratio), 4),
        sharpness=round(float(np.median(sharp)), 3) if sharp else None,
    )
    for angle in ("yaw", "pitch", "roll"):
        values = np.abs([s[angle] for s in samples])
        row[f"{angle}_max"] = round(float(values.max()), 3)
        row[f"{angle}_mean"] = round(float(values.mean()), 3)
    return row


# ----------------------------------------------------------------------------------------------- step


class FaceStep(Step):
    """Shot row → one candidate row per face track; a shot without any face is rejected as ``no_face``."""

    def __init__(self, config):
        self.faces = config.faces
        if self.faces.backend not in BACKENDS:
            raise ConfigError(f"unknown face backend {self.faces.backend!r}; choose from {sorted(BACKENDS)}")

    def _backend(self):
        if getattr(self, "_lazy_backend", None) is None:
            self._lazy_backend = make_backend(self.faces.backend, self.faces.min_confidence)
        return self._lazy_backend

    def detect_shot(self, shot: dict) -> list[tuple[int, list[Detection]]]:
        """Decode the shot at the sample rate and detect every sampled frame: [(frame_index, detections)].

        Frames are not kept (a long shot would not fit in memory): what later steps need from the pixels,
        the sharpness of each face, is measured here.
        """
        from ..media import iter_frames

        backend = self._backend()
        fps = float(shot["fps"])
        width, height = int(shot["width"]), int(shot["height"])
        start, end = int(shot["shot_start_frame"]), int(shot["shot_end_frame"])
        sample_fps = min(self.faces.sample_fps, fps)
        scale = min(1.0, MAX_DETECT_SIDE / max(width, height))
        size = None if scale == 1.0 else (int(round(width * scale / 2)) * 2, int(round(height * scale / 2)) * 2)
        per_sample = []
        k = 0
        for chunk in iter_frames(shot["abs_path"], fps=sample_fps, size=size,
                                 start=start / fps, duration=(end - start) / fps):
            for frame in chunk:
                index = start + sampled_frame_index(k, fps, sample_fps)
                k += 1
                if index >= end:
                    break
                dets = backend.detect(frame)
                for d in dets:
                    d.sharpness = sharpness(frame, d.box)
                if scale != 1.0:
                    sx, sy = width / frame.shape[1], height / frame.shape[0]
                    for d in dets:
                        d.box = [d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy]
                        d.landmarks5 = [[x * sx, y * sy] for x, y in d.landmarks5]
                per_sample.append((index, dets))
        return per_sample

    def run(self, rows, rank=0, world_size=1):
        backend = None
        for shot in rows:
            backend = backend or self._backend()
            per_sample = self.detect_shot(shot)
            tracks = track_faces(per_sample, self.faces.iou_threshold, self.faces.max_gap_samples)
            shot_id = f"{shot['source_id']}/{shot['segment_index']}/{shot['shot_index']}"
            if self.ctx is not None:
                self.ctx.count("samples", len(per_sample))
                self.ctx.count("detections", sum(len(d) for _, d in per_sample))
            if not tracks:
                if self.ctx is not None:
                    self.ctx.reject(shot_id, "no_face", source_id=shot["source_id"], value=0.0,
                                    samples=len(per_sample))
                continue
            for track in tracks:
                row = summarise_track(track, shot, self.faces.crop_margin, (per_sample[0][0], per_sample[-1][0]))
                row["detector_backend"] = backend.name
                row["detector_model"] = backend.model
                if self.ctx is not None:
                    self.ctx.count("tracks")
                yield row
        if self.ctx is not None and backend is not None:
            for key, value in backend.stats.items():
                self.ctx.count(key, value)
