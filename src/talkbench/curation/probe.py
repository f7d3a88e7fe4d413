"""Probe a downloaded video with ffprobe: codecs, pixel format and bit depth, size, rotation, fps, VFR, audio.

A file that is empty, unparsable, or has no video stream is rejected with a reason (``ProbeError.reason``).
Variable frame rate is judged from the first packet timestamps (not only from the avg/r_frame_rate pair, which
many constant-rate files disagree on because of rounding in their time base).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from fractions import Fraction
from pathlib import Path

from ..errors import MediaError
from ..media import ffmpeg_bin, probe_json

VFR_PACKETS = 300  # timestamps read to judge frame-rate variability
VFR_TOLERANCE = 0.02  # relative spread of frame durations tolerated as constant (time-base rounding)


class ProbeError(MediaError):
    """A file cannot be used as a video; ``reason`` is a short code for the rejections table."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.reason, str(self)))


def _rate(text) -> float | None:
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return None
    return float(value) if value > 0 else None


def _bit_depth(stream: dict) -> int | None:
    raw = stream.get("bits_per_raw_sample")
    if raw and str(raw).isdigit():
        return int(raw)
    pix = stream.get("pix_fmt") or ""
    m = re.search(r"p(9|10|12|14|16)(le|be)?$", pix)
    if m:
        return int(m.group(1))
    return 8 if pix else None


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    rotate = (stream.get("tags") or {}).get("rotate")
    return int(rotate) % 360 if rotate and str(rotate).lstrip("-").isdigit() else 0


def frame_durations(path: str | os.PathLike, stream_index: int, limit: int = VFR_PACKETS) -> list[float]:
    """Differences of the first ``limit`` video packet timestamps, in presentation order.

    Demuxed in-process with PyAV (no decode, no extra process); ffprobe is the fallback.
    """
    times: list[float] = []
    try:
        import av

        with av.open(str(path)) as container:
            stream = container.streams[stream_index]
            for packet in container.demux(stream):
                if packet.pts is not None and packet.size:
                    times.append(float(packet.pts * packet.time_base))
                    if len(times) >= limit:
                        break
    except Exception:  # noqa: BLE001 - PyAV missing or a container it rejects: ask ffprobe instead
        cmd = [ffmpeg_bin("ffprobe"), "-v", "error", "-select_streams", str(stream_index), "-read_intervals",
               f"%+#{limit}", "-show_entries", "packet=pts_time", "-of", "csv=p=0", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times = []
        for line in proc.stdout.split():
            try:
                times.append(float(line.strip(",")))
            except ValueError:
                continue
    times.sort()
    return [b - a for a, b in zip(times, times[1:])]


def is_variable(durations: list[float]) -> bool:
    if len(durations) < 3:
        return False
    durations = sorted(durations)
    median = durations[len(durations) // 2]
    if median <= 0:
        return True
    return (durations[-1] - durations[0]) / median > VFR_TOLERANCE + 1e-9


def probe_video(path: str | os.PathLike) -> dict:
    """Probe fields of the ``videos`` manifest for one file; raises ProbeError for unusable files."""
    path = Path(path)
    if not path.is_file():
        raise ProbeError("missing_file", "no such file")
    size = path.stat().st_size
    if size == 0:
        raise ProbeError("empty_file", "the file is empty (0 bytes)")
    try:
        info = probe_json(path)
    except MediaError as exc:
        detail = str(exc).replace(f"{path}: ", "")
        raise ProbeError("corrupt", f"not a readable media file ({detail})") from exc
    streams = info.get("streams", [])
    fmt = info.get("format", {})
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    if video is None:
        raise ProbeError("no_video_stream", f"no video stream (found {[s.get('codec_type') for s in streams]})")
    if not video.get("width") or not video.get("height"):
        raise ProbeError("corrupt", "the video stream has no frame size")
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    avg = _rate(video.get("avg_frame_rate"))
    real = _rate(video.get("r_frame_rate"))
    duration = None
    for source in (video.get("duration"), fmt.get("duration")):
        try:
            duration = float(source)
            break
        except (TypeError, ValueError):
            continue
    if duration is None or duration <= 0:
        raise ProbeError("corrupt", f"no usable duration (found {duration})")
    n_frames = int(video["nb_frames"]) if str(video.get("nb_frames", "")).isdigit() else None
    durations = frame_durations(path, int(video.get("index", 0)))
    vfr = is_variable(durations)
    if not vfr and avg and real and abs(avg - real) / real > 0.05:
        vfr = True
    return {
        "size_bytes": size,
        "container": fmt.get("format_name"),
        "video_codec": video.get("codec_name"),
        "pix_fmt": video.get("pix_fmt"),
        "bit_depth": _bit_depth(video),
        "width": int(video["width"]),
        "height": int(video["height"]),
        "rotation": _rotation(video),
        "avg_fps": avg,
        "real_fps": real,
        "is_vfr": bool(vfr),
        "duration": duration,
        "n_frames": n_frames if n_frames is not None else (int(round(duration * avg)) if avg else None),
        "has_audio": audio is not None,
        "audio_codec": audio.get("codec_name") if audio else None,
        "audio_rate": int(audio["sample_rate"]) if audio and str(audio.get("sample_rate", "")).isdigit() else None,
        "audio_channels": int(audio["channels"]) if audio and audio.get("channels") else None,
    }


def display_size(probe: dict) -> tuple[int, int]:
    """Width and height as displayed (after the rotation metadata is applied)."""
    w, h = probe["width"], probe["height"]
    return (h, w) if probe.get("rotation", 0) in (90, 270) else (w, h)


def probe_summary(probe: dict) -> str:
    return json.dumps({k: probe[k] for k in ("video_codec", "pix_fmt", "width", "height", "rotation", "avg_fps",
                                              "is_vfr", "has_audio")}, sort_keys=True)
