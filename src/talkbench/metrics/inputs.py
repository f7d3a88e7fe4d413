"""Read what `talkbench metrics compute` scores: a video file, a folder of PNG frames, or a folder of videos.

Every input is decoded by the protocol's one frame reader (``talkbench.manifests.frames.read_video``): RGB uint8 at
the protocol's fps, size, resize kernel and colour handling, the same frames `bench run` scores.
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


def read_clip(clip_id: str, path: Path, protocol) -> Clip:
    """One clip at the protocol's fps, size and colour (``talkbench.manifests.frames.read_video``), with its audio:
    a video's own track, or the first ``*.wav`` beside PNG frames."""
    from ..manifests.frames import read_video
    from ..media import read_audio

    video = read_video(path, protocol)
    if path.is_dir():
        wavs = sorted(path.glob("*.wav"))
        audio = read_audio(wavs[0], rate=protocol.audio_rate) if wavs else None
        return Clip(clip_id, video.frames, audio, {"frames": "png", "resized": video.info["resized"]})
    info = {"source_fps": video.info["source_fps"], "resampled": video.info["resampled"]}
    return Clip(clip_id, video.frames, read_audio(path, rate=protocol.audio_rate), info)


def read_image(path: str | Path) -> np.ndarray:
    from PIL import Image

    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path}: cannot read image ({exc})") from exc
