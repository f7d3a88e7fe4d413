"""Read what is scored: a video file, a folder of PNG frames, or a folder of videos, under one input policy.

Every input is decoded by the protocol's one frame reader (``talkbench.manifests.frames.read_video``): RGB uint8 at
the protocol's fps, size, resize kernel and colour handling, the same frames `bench run` scores.

The input policy (:class:`InputPolicy`) decides what happens to an output that does not match the protocol, and
`metrics compute` and `bench run` (``folder:`` outputs) both apply it, with the same defaults:

- frame rate: a video at another fps is resampled to the protocol fps, recorded as ``resampled.fps`` =
  [source fps, protocol fps]; PNG frames carry no rate and are taken at the protocol fps (``fps_assumed``);
- size: a square frame of another size is resized with the protocol's kernel, recorded as ``resampled.size`` =
  [source size, protocol size];
- non-square frames are refused (``not_square``): stretching them to a square would distort the face. With
  ``allow_nonsquare`` they are resized anyway and the row records ``resampled.nonsquare`` = [width, height] and the
  flag ``nonsquare_resized``;
- length: a generated video whose frame count (at the protocol fps) differs from its reference is refused
  (``frame_count_mismatch``, policy ``error``, the default), or with ``trim`` both are cut to the shorter one, recorded
  as ``trimmed`` = {generated_frames, reference_frames, scored_frames} and the flag ``length_trimmed``.

Everything recorded goes into every row of the clip (``extra`` and ``flags``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, MediaError, TalkbenchError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
LENGTH_POLICIES = ("error", "trim")


class InputError(TalkbenchError):
    """An input the policy refuses; ``reason`` is the short code a bench row stores in ``null_reason``."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class InputPolicy:
    length: str = "error"  # error | trim (see the module docstring)
    allow_nonsquare: bool = False

    def __post_init__(self):
        if self.length not in LENGTH_POLICIES:
            raise ConfigError(f"unknown length policy {self.length!r}; choose from {sorted(LENGTH_POLICIES)}")


@dataclass
class Clip:
    clip_id: str
    frames: np.ndarray  # (T, H, W, 3) uint8
    audio: np.ndarray | None
    info: dict = field(default_factory=dict)  # what the policy did: recorded in every row's ``extra``
    flags: list[str] = field(default_factory=list)


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


def read_frames_policy(path: Path, protocol, policy: InputPolicy = InputPolicy()) -> tuple[np.ndarray, dict, list]:
    """(frames at the protocol's fps and size, what was done to them, flags); a refused input raises InputError
    (``not_square``, ``missing_output``, ``corrupt_output``)."""
    from ..manifests.frames import read_pngs, read_video, resize_frames
    from ..media import video_size

    path = Path(path)
    record: dict = {}
    try:
        if path.is_dir():
            raw = read_pngs(path)
            h, w = raw.shape[1:3]
            record["fps_assumed"] = protocol.fps
        else:
            w, h = video_size(path)
            raw = None
    except MediaError as exc:
        reason = "missing_output" if "no PNG frames" in str(exc) else "corrupt_output"
        raise InputError(reason, str(exc)) from exc
    flags = []
    resampled: dict = {}
    if w != h:
        if not policy.allow_nonsquare:
            raise InputError("not_square", f"{path.name} is {w}x{h}; expected a square frame "
                                           f"({protocol.size}x{protocol.size}); crop it to the face square, or "
                                           f"allow the distortion with --allow-nonsquare")
        resampled["nonsquare"] = [w, h]
        flags.append("nonsquare_resized")
    try:
        if raw is not None:
            frames = resize_frames(raw, protocol)
        else:
            out = read_video(path, protocol)
            frames = out.frames
            if out.info["resampled"]:
                resampled["fps"] = [round(out.info["source_fps"], 4), protocol.fps]
    except MediaError as exc:
        raise InputError("corrupt_output", str(exc)) from exc
    if (h, w) != (protocol.size, protocol.size) and w == h:
        resampled["size"] = [w, protocol.size]
    if resampled:
        record["resampled"] = resampled
    return frames, record, flags


def match_length(pred: np.ndarray, expected: int, policy: InputPolicy = InputPolicy()
                 ) -> tuple[np.ndarray, int, dict, list]:
    """(pred, reference frames to compare, record, flags) under the length policy; a mismatch under ``error``
    raises InputError ``frame_count_mismatch``."""
    found = len(pred)
    if found == expected:
        return pred, expected, {}, []
    if policy.length == "error":
        raise InputError("frame_count_mismatch", f"expected {expected} frames at the protocol fps, found {found} "
                                                 f"(use --length-policy trim to score the common prefix)")
    n = min(found, expected)
    return pred[:n], n, {"trimmed": {"generated_frames": found, "reference_frames": expected, "scored_frames": n}}, \
        ["length_trimmed"]


def read_clip(clip_id: str, path: Path, protocol, policy: InputPolicy = InputPolicy()) -> Clip:
    """One clip under the policy (``read_frames_policy``), with its audio: a video's own track, or the first
    ``*.wav`` beside PNG frames."""
    from ..media import read_audio

    path = Path(path)
    frames, record, flags = read_frames_policy(path, protocol, policy)
    if path.is_dir():
        wavs = sorted(path.glob("*.wav"))
        audio = read_audio(wavs[0], rate=protocol.audio_rate) if wavs else None
    else:
        audio = read_audio(path, rate=protocol.audio_rate)
    return Clip(clip_id, frames, audio, record, flags)


def read_image(path: str | Path) -> np.ndarray:
    from PIL import Image

    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path}: cannot read image ({exc})") from exc
