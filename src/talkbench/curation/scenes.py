"""Shot detection: one segment row → one row per shot, trimmed at every cut.

PySceneDetect's detectors (ContentDetector by default, AdaptiveDetector as an option) read frames that ffmpeg has
already scaled down to 256 px wide, the size PySceneDetect's own auto-downscale picks, so the decode is one ffmpeg
pass with no OpenCV reader. ``scenes.trim_frames`` frames are dropped on both sides of every cut, because the cut
frame reported by a detector can be off by one or two and a dissolve spreads over a few frames: no frame of the
neighbouring shot may leak into a clip. A shot that ends up shorter than ``filters.min_duration`` can never give a
clip, so it is rejected here as ``shot_too_short`` (value = its seconds after trimming).
"""

from __future__ import annotations

import os
from fractions import Fraction

from ..errors import ConfigError, MediaError
from ..runtime import Step

SCENE_WIDTH = 256  # PySceneDetect's default auto-downscale target width

DETECTORS = ("content", "adaptive")


def make_detector(scenes):
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    if scenes.detector == "content":
        return ContentDetector(threshold=scenes.content_threshold, min_scene_len=scenes.min_scene_frames)
    if scenes.detector == "adaptive":
        return AdaptiveDetector(adaptive_threshold=scenes.adaptive_threshold, min_scene_len=scenes.min_scene_frames)
    raise ConfigError(f"unknown scene detector {scenes.detector!r}; choose from {sorted(DETECTORS)}")


def detect_cuts(path: str | os.PathLike, fps: float, scenes, width: int | None = None,
                height: int | None = None) -> tuple[list[int], int]:
    """(sorted cut frame numbers, decoded frame count): a cut at f means frame f starts a new shot."""
    import cv2
    from scenedetect import FrameTimecode

    from ..media import iter_frames, video_size

    if width is None or height is None:
        width, height = video_size(path)
    size = (SCENE_WIDTH, max(2, int(round(height * SCENE_WIDTH / width / 2)) * 2))
    detector = make_detector(scenes)
    rate = Fraction(fps).limit_denominator(1001)
    cuts: list[int] = []
    n = 0
    for chunk in iter_frames(path, size=size):
        for frame in chunk:
            bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)  # detectors convert from OpenCV's BGR order
            cuts += [c.frame_num for c in detector.process_frame(FrameTimecode(n, rate), bgr)]
            n += 1
    if n == 0:
        raise MediaError(f"{path}: no video frames decoded for shot detection")
    cuts += [c.frame_num for c in detector.post_process(FrameTimecode(n, rate))]
    return sorted({c for c in cuts if 0 < c < n}), n


def shots_from_cuts(cuts: list[int], n_frames: int, trim: int) -> list[tuple[int, int]]:
    """[(start, end exclusive)] per shot, with ``trim`` frames removed on each side of every cut (not at the ends)."""
    bounds = [0, *cuts, n_frames]
    shots = []
    for i in range(len(bounds) - 1):
        start = bounds[i] + (trim if i > 0 else 0)
        end = bounds[i + 1] - (trim if i + 1 < len(bounds) - 1 else 0)
        shots.append((start, max(start, end)))
    return shots


class SceneStep(Step):
    """Segment row → shot rows (``shot_index``, ``shot_start_frame``, ``shot_end_frame`` exclusive)."""

    def __init__(self, config):
        if config.scenes.detector not in DETECTORS:
            raise ConfigError(f"unknown scene detector {config.scenes.detector!r}; choose from {sorted(DETECTORS)}")
        if config.scenes.trim_frames < 0:
            raise ConfigError(f"scenes.trim_frames must be ≥ 0, got {config.scenes.trim_frames}")
        self.scenes = config.scenes
        self.min_duration = config.filters.min_duration

    def run(self, rows, rank=0, world_size=1):
        for seg in rows:
            fps = float(seg["fps"])
            cuts, n = detect_cuts(seg["abs_path"], fps, self.scenes, seg.get("width"), seg.get("height"))
            shots = shots_from_cuts(cuts, n, self.scenes.trim_frames)
            self.count("cuts", len(cuts))
            self.count("frames", n)
            for index, (start, end) in enumerate(shots):
                seconds = (end - start) / fps
                if seconds < self.min_duration:
                    self.reject(f"{seg['source_id']}/{seg['segment_index']}/{index}", "shot_too_short",
                                source_id=seg["source_id"], value=round(seconds, 6),
                                threshold=self.min_duration, start_frame=start, end_frame=end)
                    continue
                row = dict(seg)
                row.update(shot_index=index, shot_start_frame=start, shot_end_frame=end, n_shots=len(shots))
                self.count("shots")
                yield row


def segment_row(path: str | os.PathLike, source_id: str = "video", segment_index: int = 0,
                source_label: str | None = None) -> dict:
    """A segment row (the input of SceneStep) for a plain video file: tests, benchmarks and ad-hoc runs."""
    from ..media import probe_json

    info = probe_json(path)
    video = next((s for s in info.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is None:
        raise MediaError(f"{path}: no video stream")
    num, _, den = video.get("avg_frame_rate", "0/1").partition("/")
    fps = float(Fraction(int(num), int(den or 1))) if int(den or 1) else 0.0
    n_frames = int(video.get("nb_frames") or round(float(info["format"]["duration"]) * fps))
    path = os.path.abspath(path)
    return {"source_id": source_id, "segment_index": segment_index, "path": os.path.basename(path),
            "abs_path": path, "fps": fps, "n_frames": n_frames,
            "has_audio": any(s.get("codec_type") == "audio" for s in info.get("streams", [])),
            "source_label": source_label, "width": int(video["width"]), "height": int(video["height"]),
            "segment_start": 0.0, "out_dir": os.path.dirname(path)}


__all__ = ["SceneStep", "detect_cuts", "shots_from_cuts", "segment_row", "make_detector"]
