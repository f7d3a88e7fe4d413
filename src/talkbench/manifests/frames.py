"""Frame reading owned by the protocol: one ``read_video(path, protocol)`` for every stage that scores or learns.

A video (any container ffmpeg reads) or a folder of PNG frames (sorted file names give the order) becomes
(T, size, size, 3) uint8 RGB at the protocol's fps and size:

- colour (``protocol.colour``): ``rgb24``: PNG frames through PIL ``convert("RGB")`` (palette expanded, alpha
  dropped); videos through ffmpeg's ``rgb24`` output (swscale, the stream's tagged matrix, BT.601 when untagged);
- frame rate: a video is resampled to the protocol fps by ffmpeg's ``fps`` filter; PNG frames are taken to be at
  the protocol fps;
- size (``protocol.resize``): frames of another size are decoded at their own size and resized with the protocol's
  kernel, the same code for videos and PNG frames, so a folder and its mp4 score alike. ``pil-bicubic`` is PIL's
  antialiased bicubic (as clean-fid argues: a kernel without antialiasing aliases when it shrinks).

``bench run`` (clips and ``folder:`` outputs), ``metrics compute`` and the training data all read through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MediaError

RESIZE_KERNELS = {"pil-bicubic": "BICUBIC", "pil-bilinear": "BILINEAR", "pil-lanczos": "LANCZOS"}
COLOURS = {"rgb24": "PNG: PIL convert('RGB'); video: ffmpeg rgb24"}


@dataclass
class Frames:
    frames: np.ndarray  # (T, size, size, 3) uint8
    info: dict = field(default_factory=dict)  # kind, source_size, resized, source_fps, resampled


def _check(protocol) -> None:
    if protocol.resize not in RESIZE_KERNELS:
        raise MediaError(f"unknown resize kernel {protocol.resize!r}; choose from {sorted(RESIZE_KERNELS)}")
    if protocol.colour not in COLOURS:
        raise MediaError(f"unknown colour handling {protocol.colour!r}; choose from {sorted(COLOURS)}")


def resize_frames(frames: np.ndarray, protocol) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) with the protocol's kernel (a no-op at the protocol size)."""
    _check(protocol)
    size = protocol.size
    if frames.shape[1:3] == (size, size):
        return frames
    from PIL import Image

    kernel = getattr(Image.Resampling, RESIZE_KERNELS[protocol.resize])
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), kernel)) for f in frames])


def read_pngs(folder: Path) -> np.ndarray:
    """Every ``*.png`` of a folder in file-name order, as (T, H, W, 3) uint8 RGB at their own size."""
    from PIL import Image

    files = sorted(Path(folder).glob("*.png"))
    if not files:
        raise MediaError(f"{folder}: no PNG frames")
    frames = []
    for f in files:
        try:
            with Image.open(f) as img:
                frames.append(np.asarray(img.convert("RGB")))
        except (OSError, ValueError) as exc:
            raise MediaError(f"{f}: cannot read PNG frame ({exc})") from exc
    shapes = sorted({fr.shape for fr in frames})
    if len(shapes) != 1:
        raise MediaError(f"{folder}: frames of different sizes {shapes}")
    return np.stack(frames)


def video_fps(path: Path) -> float | None:
    from ..media import probe_json

    for stream in probe_json(path).get("streams", []):
        if stream.get("codec_type") == "video":
            num, den = (stream.get("avg_frame_rate") or stream.get("r_frame_rate") or "0/0").split("/")
            return float(num) / float(den) if float(den) and float(num) else None
    raise MediaError(f"{path}: no video stream")


def read_video(path: str | Path, protocol, *, duration: float | None = None) -> Frames:
    """A video file or a folder of PNG frames at the protocol's fps, size and colour (see the module docstring).

    ``duration`` (videos only) decodes just the first seconds, e.g. a source portrait's first frame.
    """
    _check(protocol)
    path = Path(path)
    if path.is_dir():
        frames = read_pngs(path)
        info = {"kind": "png", "fps_assumed": protocol.fps}
    else:
        from ..media import read_frames

        source_fps = video_fps(path)
        frames = read_frames(path, fps=protocol.fps, duration=duration)
        info = {"kind": "video", "source_fps": source_fps,
                "resampled": source_fps is not None and abs(source_fps - protocol.fps) > 1e-3}
    h, w = frames.shape[1:3]
    info.update(source_size=[w, h], resized=(h, w) != (protocol.size, protocol.size))
    return Frames(resize_frames(frames, protocol), info)


def reading_at(size: int, protocol_id: str = "talkbench-v1-256"):
    """A protocol's frame reading at another size: training data decoded at a model's own resolution reads frames
    exactly as the benchmark does (same fps, kernel and colour)."""
    from dataclasses import replace

    from .protocols import get_protocol

    base = get_protocol(protocol_id)
    return base if base.size == size else replace(base, size=size)
