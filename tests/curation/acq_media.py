"""Real media for the acquisition tests: the skimage astronaut portrait, animated, with espeak-ng speech.

Every file is short and small so the whole set is made in a few seconds. ``base.mp4`` has a white flash at
frame ``FLASH_FRAME`` and a 1 kHz beep at the same instant, so tests can check that video and audio stay in sync.
Variants: variable frame rate, 10-bit, odd size, rotation metadata, no audio, truncated (moov at the end and
faststart), a text file named .mp4, an empty file.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np

from talkbench.media import read_audio, write_video

FPS = 25
N_FRAMES = 75  # 3 s
FLASH_FRAME = 40  # 1.6 s
SIZE = (176, 144)  # width, height
SPEECH = "Talking heads need clean data. This sentence is spoken by espeak."


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", *args], check=True)


def astronaut_frames(n: int = N_FRAMES, size=SIZE, flash: int | None = FLASH_FRAME) -> np.ndarray:
    from PIL import Image
    from skimage.data import astronaut

    w, h = size
    face = Image.fromarray(astronaut()[:320, 80:400])  # the head and shoulders
    base = np.asarray(face.resize((w + 40, h + 40), Image.BICUBIC))
    frames = []
    for i in range(n):
        dx, dy = int(20 + 12 * np.sin(i / 6)), int(20 + 8 * np.cos(i / 9))  # natural-looking head motion
        frame = base[dy:dy + h, dx:dx + w].copy()
        if flash is not None and i == flash:
            frame[:] = 255
        frames.append(frame)
    return np.stack(frames)


def speech_with_beep(workdir: Path, seconds: float, beep_at: float | None, rate: int = 16000) -> np.ndarray:
    wav = workdir / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), SPEECH], check=True)
    speech = read_audio(wav, rate)
    audio = np.zeros(int(seconds * rate), np.float32)
    n = min(len(audio), len(speech))
    audio[:n] = 0.3 * speech[:n] / max(1e-6, np.abs(speech[:n]).max())
    if beep_at is not None:
        start = int(beep_at * rate)
        t = np.arange(int(0.08 * rate)) / rate
        audio[start:start + len(t)] = 0.9 * np.sin(2 * np.pi * 1000 * t)
    return audio


@functools.lru_cache(maxsize=None)
def make_media(root: str) -> dict[str, Path]:
    """Write every test file once per session under ``root``; returns name → path."""
    d = Path(root)
    d.mkdir(parents=True, exist_ok=True)
    frames = astronaut_frames()
    audio = speech_with_beep(d, N_FRAMES / FPS, FLASH_FRAME / FPS)
    m = {"base": write_video(d / "base.mp4", frames, FPS, audio=audio, audio_rate=16000)}
    m["speech_wav"] = d / "speech.wav"
    # Variable frame rate: drop every fifth frame and delay every other one by 13 ms (1 ms time base), keeping
    # each frame's time otherwise, so the flash stays at 1.6 s and in sync with the untouched audio.
    m["vfr"] = d / "vfr.mp4"
    _ffmpeg("-i", str(m["base"]), "-vf", "select='not(eq(mod(n\\,5)\\,2))',setpts='PTS+if(mod(N,2),0.013,0)/TB'",
            "-fps_mode", "vfr", "-enc_time_base", "1/1000", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "copy",
            str(m["vfr"]))
    m["tenbit"] = d / "tenbit.mp4"
    _ffmpeg("-i", str(m["base"]), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-c:a", "copy",
            str(m["tenbit"]))
    m["odd"] = d / "odd.mp4"
    _ffmpeg("-i", str(m["base"]), "-vf", "format=yuv444p,crop=175:143:0:0", "-c:v", "libx264", "-preset", "ultrafast",
            "-pix_fmt", "yuv444p", "-c:a", "copy", str(m["odd"]))
    m["rotated"] = d / "rotated.mp4"
    _ffmpeg("-i", str(m["base"]), "-c", "copy", "-metadata:s:v", "rotate=90", str(m["rotated"]))
    m["noaudio"] = d / "noaudio.mp4"
    _ffmpeg("-i", str(m["base"]), "-c", "copy", "-an", str(m["noaudio"]))
    data = m["base"].read_bytes()
    m["truncated"] = d / "truncated.mp4"  # moov atom at the end: cut off, the file cannot be parsed
    m["truncated"].write_bytes(data[: len(data) // 2])
    faststart = d / "faststart.mp4"
    _ffmpeg("-i", str(m["base"]), "-c", "copy", "-movflags", "+faststart", str(faststart))
    fs = faststart.read_bytes()
    m["truncated_faststart"] = d / "truncated_faststart.mp4"  # parses, but frames are missing after the cut
    m["truncated_faststart"].write_bytes(fs[: len(fs) // 2])
    m["notvideo"] = d / "notvideo.mp4"
    m["notvideo"].write_text("this is a text file, not a video\n")
    m["empty"] = d / "empty.mp4"
    m["empty"].write_bytes(b"")
    return m


def flash_time(path: Path) -> float:
    """Time (s) of the brightest frame of a 25 fps file."""
    from talkbench.media import read_frames

    frames = read_frames(path)
    return int(np.argmax(frames.reshape(len(frames), -1).mean(1))) / FPS


def beep_time(path: Path, rate: int = 16000) -> float:
    """Onset (s) of the 1 kHz beep: the first 10 ms window whose energy is mostly at 1 kHz and loud."""
    audio = read_audio(path, rate)
    win = rate // 100
    t = np.arange(win) / rate
    ref_c, ref_s = np.cos(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t)
    for i in range(0, len(audio) - win, win // 2):
        x = audio[i:i + win]
        tone = np.hypot(x @ ref_c, x @ ref_s) * 2 / win
        if tone > 0.5:
            return i / rate
    raise AssertionError(f"{path}: no beep found")
