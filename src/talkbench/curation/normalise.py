"""Normalise one span of a video in a single ffmpeg pass: constant fps, 16 kHz mono AAC, rotation applied,
8-bit yuv420p with even dimensions.

Cutting is frame-accurate: ``-ss`` before ``-i`` while transcoding makes ffmpeg decode from the previous keyframe and
drop everything before ``start`` (timestamps then restart at 0), ``fps`` picks the nearest source frame for every
output slot, and ``-frames:v`` stops at exactly ``round(duration × fps)`` frames. Audio is resampled with
``async`` (gaps and drifts in the source are padded/trimmed against its timestamps, so it stays in sync with the
video), padded with silence and cut to the same duration. Rotation metadata is applied by ffmpeg's autorotate
(on by default) before the filters, so the output has no display matrix. Odd sizes lose their last row/column
(a crop, not a rescale, so pixel coordinates keep their meaning).

The output is written to a temporary name in the target folder and renamed once its frame count is checked;
encoder flags are bit-exact with a fixed thread count, so a rerun produces the same bytes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import MediaError
from ..media import ffmpeg_bin, sha256_file

# One thread everywhere (decoder, filters, x264): x264's output depends on its thread count, and a CI run once saw
# different segment bytes from two fresh runs with 2 encoder threads and auto decoder/filter threads under heavy
# load. Parallelism comes from the executor's worker processes instead.
THREADS = 1
CRF = 18
PRESET = "veryfast"
AUDIO_BITRATE = "64k"


class NormaliseError(MediaError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.reason, str(self)))


def expected_frames(duration: float, fps: float) -> int:
    return int(round(duration * fps))


def ffmpeg_command(src: str | os.PathLike, dst: str | os.PathLike, *, start: float | None, n_frames: int,
                   fps: float = 25.0, audio_rate: int = 16000, has_audio: bool = True) -> list[str]:
    """The one ffmpeg invocation that normalises ``n_frames`` frames from ``start`` (benchmarks reuse it)."""
    duration = n_frames / fps
    cmd = [ffmpeg_bin(), "-v", "error", "-nostdin", "-y"]
    if start:
        cmd += ["-ss", f"{start:.6f}"]
    cmd += ["-threads", str(THREADS), "-i", str(src), "-map", "0:v:0", "-filter_threads", str(THREADS)]
    # One cloned frame at the end: ffmpeg 5.1 fps ignores the last frame's duration, so a VFR tail can be a slot short.
    vf = f"fps={fps}:start_time=0,tpad=stop_mode=clone:stop=1,crop=trunc(iw/2)*2:trunc(ih/2)*2:0:0,format=yuv420p"
    cmd += ["-vf", vf, "-frames:v", str(n_frames), "-c:v", "libx264", "-preset", PRESET, "-crf", str(CRF),
            "-pix_fmt", "yuv420p", "-threads", str(THREADS)]
    if has_audio:
        cmd += ["-map", "0:a:0", "-af", f"aresample={audio_rate}:async=1:first_pts=0,apad",
                "-ac", "1", "-ar", str(audio_rate), "-c:a", "aac", "-b:a", AUDIO_BITRATE]
    else:
        cmd += ["-an"]
    cmd += ["-t", f"{duration:.6f}", "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
            "-bitexact", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
            "-movflags", "+faststart", "-f", "mp4", str(dst)]
    return cmd


def count_frames(path: str | os.PathLike) -> int:
    """Video packets in the file (one per frame for the H.264 we write); demuxed in-process, no decode."""
    try:
        import av

        with av.open(str(path)) as container:
            return sum(1 for packet in container.demux(video=0) if packet.size)
    except ImportError:
        pass
    except Exception as exc:  # noqa: BLE001 - PyAV raises its own error types for unreadable files
        raise MediaError(f"{path}: cannot count frames: {exc}") from exc
    cmd = [ffmpeg_bin("ffprobe"), "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
           "stream=nb_read_packets", "-of", "csv=p=0", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    text = proc.stdout.strip().strip(",")
    if proc.returncode != 0 or not text.isdigit():
        raise MediaError(f"{path}: cannot count frames: {proc.stderr.strip()[-200:]}")
    return int(text)


def normalise_span(src: str | os.PathLike, dst: str | os.PathLike, *, start: float | None, end: float | None,
                   source_duration: float, has_audio: bool, fps: float = 25.0, audio_rate: int = 16000) -> dict:
    """Cut ``[start, end)`` (None = from the start / to the end) of ``src`` into ``dst``; returns the segment fields.

    Raises NormaliseError (reason ``span_outside_video``, ``ffmpeg_failed`` or ``frame_count_mismatch``).
    """
    dst = Path(dst)
    start_s = float(start or 0.0)
    end_s = float(source_duration if end is None else end)
    if start_s >= source_duration:
        raise NormaliseError("span_outside_video",
                             f"span starts at {start_s:.3f} s but the video lasts {source_duration:.3f} s")
    n = expected_frames(end_s - start_s, fps)
    if n <= 0:
        raise NormaliseError("span_outside_video", f"span {start_s:.3f}-{end_s:.3f} s holds no frame at {fps} fps")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp.mp4")
    try:
        proc = subprocess.run(ffmpeg_command(src, tmp, start=start_s, n_frames=n, fps=fps, audio_rate=audio_rate,
                                             has_audio=has_audio), capture_output=True, text=True)
        if proc.returncode != 0:
            err = proc.stderr.strip().splitlines()
            if any(s in proc.stderr for s in ("No space left", "Read-only file system", "Permission denied")):
                from .download import OutputWriteError  # our folder, not the video: stop the run

                raise OutputWriteError(f"ffmpeg cannot write {dst}: {err[-1] if err else ''}")
            raise NormaliseError("ffmpeg_failed", f"ffmpeg failed: {err[-1] if err else f'exit {proc.returncode}'}")
        got = count_frames(tmp)
        if got != n:
            raise NormaliseError("frame_count_mismatch",
                                 f"expected {n} frames ({end_s - start_s:.3f} s at {fps} fps), found {got}")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return {"n_frames": n, "expected_frames": n, "sha256": sha256_file(dst)}
