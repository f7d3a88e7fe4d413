"""Read what `talkbench metrics compute` scores: a video file, a folder of PNG frames, or a folder of videos.

Every input is decoded to RGB uint8 at the protocol's fps and size (videos through ffmpeg's fps and scale filters,
PNG frames resized with PIL bicubic when their size differs), so every metric reads the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MediaError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass
class Clip:
    clip_id: str
    frames: np.ndarray  # (T, H, W, 3) uint8
    audio: np.ndarray | None
    info: dict = field(default_factory=dict)


def list_clips(path: str | Path) -> dict[str, Path]:
    """clip id -> path: one video, one folder of PNG frames, or a folder of videos (ids are file stems)."""
    path = Path(path)
    if path.is_file():
        return {path.stem: path}
    if not path.is_dir():
        raise MediaError(f"{path}: no such file or folder")
    if any(path.glob("*.png")):
        return {path.name: path}
    videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise MediaError(f"{path}: no PNG frames and no videos ({', '.join(VIDEO_SUFFIXES)}) found")
    return {p.stem: p for p in videos}


def read_clip(clip_id: str, path: Path, fps: float, size: int, audio_rate: int) -> Clip:
    from ..media import probe_json, read_audio, read_frames

    if path.is_dir():
        from PIL import Image

        files = sorted(path.glob("*.png"))
        frames, resized = [], False
        for f in files:
            img = Image.open(f).convert("RGB")
            if img.size != (size, size):
                img, resized = img.resize((size, size), Image.BICUBIC), True
            frames.append(np.asarray(img))
        wavs = sorted(path.glob("*.wav"))
        audio = read_audio(wavs[0], rate=audio_rate) if wavs else None
        return Clip(clip_id, np.stack(frames), audio, {"frames": "png", "resized": resized})
    source_fps = None
    for stream in probe_json(path).get("streams", []):
        if stream.get("codec_type") == "video" and stream.get("avg_frame_rate", "0/0") != "0/0":
            num, den = stream["avg_frame_rate"].split("/")
            source_fps = float(num) / float(den)
    frames = read_frames(path, fps=fps, size=size)
    info = {"source_fps": source_fps, "resampled": source_fps is not None and abs(source_fps - fps) > 1e-3}
    return Clip(clip_id, frames, read_audio(path, rate=audio_rate), info)


def read_image(path: str | Path) -> np.ndarray:
    from PIL import Image

    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path}: cannot read image ({exc})") from exc
