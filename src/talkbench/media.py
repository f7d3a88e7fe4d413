"""Small media helpers shared by every stage: decode frames/audio through ffmpeg, write mp4 with muxed audio.

All decoding goes through one ffmpeg invocation per file, so every metric and loader reads the same frames.
Paths are passed as argument lists (never through a shell).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import MediaError, MissingDependencyError


def ffmpeg_bin(name: str = "ffmpeg") -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingDependencyError(f"{name} is not on PATH; install it with: apt-get install ffmpeg")
    return path


def probe_json(path: str | os.PathLike) -> dict:
    """ffprobe's streams and format as a dict; a file ffprobe cannot parse raises MediaError."""
    cmd = [ffmpeg_bin("ffprobe"), "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MediaError(f"{path}: ffprobe failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'no output'}")
    return json.loads(proc.stdout or "{}")


def video_size(path: str | os.PathLike) -> tuple[int, int]:
    for stream in probe_json(path).get("streams", []):
        if stream.get("codec_type") == "video":
            return int(stream["width"]), int(stream["height"])
    raise MediaError(f"{path}: no video stream")


def _filters(fps: float | None, size: int | tuple[int, int] | None, crop: tuple[int, int, int, int] | None) -> list[str]:
    vf = []
    if fps:
        vf.append(f"fps={fps}")
    if crop is not None:
        x, y, w, h = crop
        vf.append(f"crop={w}:{h}:{x}:{y}")
    if size is not None:
        w, h = (size, size) if isinstance(size, int) else size
        vf.append(f"scale={w}:{h}:flags=bicubic")
    return vf


def _decode_command(path, start: float | None, duration: float | None) -> list[str]:
    """ffmpeg's input part: seek before the input (fast, frame-accurate when decoding) and cut after it."""
    cmd = [ffmpeg_bin(), "-v", "error", "-nostdin"]
    if start is not None:
        cmd += ["-ss", f"{start:.6f}"]
    cmd += ["-i", str(path)]
    if duration is not None:
        cmd += ["-t", f"{duration:.6f}"]
    return cmd


def iter_frames(path: str | os.PathLike, *, fps: float | None = None, size: int | tuple[int, int] | None = None,
                crop: tuple[int, int, int, int] | None = None, start: float | None = None,
                duration: float | None = None, chunk: int = 64) -> Iterator[np.ndarray]:
    """Yield (n, H, W, 3) uint8 RGB chunks decoded by ffmpeg (optionally resampled to fps, cropped and resized)."""
    if not Path(path).exists():
        raise MediaError(f"{path}: no such file")
    if size is None:
        w, h = video_size(path) if crop is None else crop[2:]
    else:
        w, h = (size, size) if isinstance(size, int) else size
    cmd = _decode_command(path, start, duration)
    vf = _filters(fps, size, crop)
    if vf:
        cmd += ["-vf", ",".join(vf)]
    cmd += ["-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    frame_bytes = w * h * 3
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while True:
            data = proc.stdout.read(frame_bytes * chunk)
            if not data:
                break
            n = len(data) // frame_bytes
            if n:
                yield np.frombuffer(data[: n * frame_bytes], np.uint8).reshape(n, h, w, 3)
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        code = proc.wait()
    if code != 0:
        raise MediaError(f"{path}: ffmpeg could not decode: {err.splitlines()[-1] if err else f'exit {code}'}")


def read_frames(path: str | os.PathLike, **kwargs) -> np.ndarray:
    """All frames as one (T, H, W, 3) uint8 RGB array; see ``iter_frames`` for options."""
    chunks = list(iter_frames(path, **kwargs))
    if not chunks:
        raise MediaError(f"{path}: no video frames decoded")
    return np.concatenate(chunks)


def read_audio(path: str | os.PathLike, rate: int = 16000, *, start: float | None = None,
               duration: float | None = None) -> np.ndarray | None:
    """Mono float32 audio in [-1, 1] at ``rate``; None when the file has no audio stream."""
    streams = probe_json(path).get("streams", [])
    if not any(s.get("codec_type") == "audio" for s in streams):
        return None
    cmd = _decode_command(path, start, duration)
    cmd += ["-vn", "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        raise MediaError(f"{path}: ffmpeg could not decode audio: {proc.stderr.decode(errors='replace').strip()[-200:]}")
    return np.frombuffer(proc.stdout, np.int16).astype(np.float32) / 32768.0


def write_wav(path: str | os.PathLike, audio: np.ndarray, rate: int = 16000) -> None:
    import wave

    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray] | np.ndarray, fps: float = 25.0, *,
                audio: np.ndarray | str | os.PathLike | None = None, audio_rate: int = 16000, crf: int = 18,
                audio_codec: str = "aac") -> Path:
    """Encode RGB uint8 frames (an array or an iterable of frames/chunks) to H.264 mp4, atomically.

    ``audio`` is a mono float array at ``audio_rate`` or a media file whose audio is muxed; it is cut to the video.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames_iter = iter([frames] if isinstance(frames, np.ndarray) and frames.ndim == 4 else frames)
    first = next(frames_iter, None)
    if first is None:
        raise MediaError(f"{path}: no frames to write")
    first = first if first.ndim == 4 else first[None]
    h, w = first.shape[1:3]
    tmpdir = tempfile.mkdtemp(prefix=".tbw-", dir=path.parent)
    try:
        tmp_out = Path(tmpdir) / ("out" + path.suffix)
        cmd = [ffmpeg_bin(), "-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-r", f"{fps}", "-i", "-"]
        if audio is not None:
            if isinstance(audio, np.ndarray):
                wav = Path(tmpdir) / "a.wav"
                write_wav(wav, audio, audio_rate)
                cmd += ["-i", str(wav)]
            else:
                cmd += ["-i", str(audio)]
            cmd += ["-map", "0:v:0", "-map", "1:a:0?", "-c:a", audio_codec, "-ar", str(audio_rate), "-ac", "1",
                    "-shortest"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
                "-bitexact", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
                "-flags:a", "+bitexact", "-threads", "1", str(tmp_out)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            proc.stdin.write(np.ascontiguousarray(first, np.uint8).tobytes())
            for chunk in frames_iter:
                chunk = chunk if chunk.ndim == 4 else chunk[None]
                proc.stdin.write(np.ascontiguousarray(chunk, np.uint8).tobytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise MediaError(f"{path}: ffmpeg encode failed: {err.strip()[-300:]}")
        os.replace(tmp_out, path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return path


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()
