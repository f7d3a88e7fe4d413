"""Export: a fixed square crop of the source (no alignment) resized to 256 (or 512), H.264 + AAC 16 kHz.

The crop is the track's square box in source pixels, the same for every frame, so natural head motion stays in the
clip. Where the square leaves the frame the missing part is black padding (``crop_padded`` is recorded per clip).
Frames are cropped in numpy rather than by ffmpeg's crop filter, which rounds x/y down to even numbers on 4:2:0
video. The output is decoded again to check its frame count, and its SHA-256 is recorded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import MediaError
from ..runtime import Step


def crop_geometry(x0: int, y0: int, side: int, width: int, height: int):
    """(inside box (ix0, iy0, ix1, iy1), padding (left, top, right, bottom)) of a square crop on a frame."""
    ix0, iy0 = max(0, x0), max(0, y0)
    ix1, iy1 = min(width, x0 + side), min(height, y0 + side)
    if ix1 <= ix0 or iy1 <= iy0:
        raise MediaError(f"crop ({x0}, {y0}, {side}) does not overlap the {width}×{height} frame")
    return (ix0, iy0, ix1, iy1), (ix0 - x0, iy0 - y0, x0 + side - ix1, y0 + side - iy1)


def crop_frames(chunks, x0: int, y0: int, side: int, size: int):
    """Yield (n, size, size, 3) chunks: the square crop of each frame, padded with black, resized."""
    import cv2

    for chunk in chunks:
        h, w = chunk.shape[1:3]
        (ix0, iy0, ix1, iy1), (pl, pt, pr, pb) = crop_geometry(x0, y0, side, w, h)
        out = np.empty((len(chunk), size, size, 3), np.uint8)
        interp = cv2.INTER_AREA if side >= size else cv2.INTER_CUBIC
        for i, frame in enumerate(chunk):
            square = frame[iy0:iy1, ix0:ix1]
            if pl or pt or pr or pb:
                square = cv2.copyMakeBorder(square, pt, pb, pl, pr, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            out[i] = cv2.resize(np.ascontiguousarray(square), (size, size), interpolation=interp)
        yield out


def count_frames(path: str | os.PathLike) -> int:
    """Decoded video frame count (ffprobe -count_frames), not the container's claim."""
    import subprocess

    from ..media import ffmpeg_bin

    cmd = [ffmpeg_bin("ffprobe"), "-v", "error", "-select_streams", "v:0", "-count_frames",
           "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise MediaError(f"{path}: ffprobe could not count frames: {proc.stderr.strip()[-200:]}")
    return int(proc.stdout.strip().split(",")[0])


def export_clip(row: dict, out_dir: str | os.PathLike, size: int = 256, crf: int = 18, png_frames: bool = False,
                wav: bool = False, audio_rate: int = 16000) -> dict:
    """Write DIR/clips/<clip_id>.mp4 (and optional PNG frames / WAV); returns the media columns of the clip row."""
    from ..media import iter_frames, read_audio, sha256_file, write_video, write_wav

    out_dir = Path(out_dir)
    clip_id = row["clip_id"]
    fps = float(row["fps"])
    start, end = int(row["start_frame"]), int(row["end_frame"])
    n = end - start
    # A quarter frame early: ffmpeg keeps frames with pts ≥ start, so float rounding cannot drop the first one.
    t0, dur = max(0.0, (start - 0.25) / fps), n / fps
    frames = np.concatenate(list(crop_frames(iter_frames(row["abs_path"], start=t0, duration=dur), int(row["crop_x0"]),
                                             int(row["crop_y0"]), int(row["crop_size"]), size)))[:n]
    if len(frames) != n:
        raise MediaError(f"{row['abs_path']}: expected {n} frames for clip {clip_id} ({start}–{end}), "
                         f"decoded {len(frames)}")
    audio = None
    if row.get("has_audio"):
        audio = read_audio(row["abs_path"], audio_rate, start=start / fps, duration=dur)
        if audio is not None and len(audio) == 0:
            audio = None
        elif audio is not None:
            # write_video muxes with -shortest: a short audio tail would cut video frames, so pad it with silence.
            need = int(round(dur * audio_rate))
            if len(audio) < need:
                audio = np.concatenate([audio, np.zeros(need - len(audio), np.float32)])
    rel = Path("clips") / f"{clip_id}.mp4"
    write_video(out_dir / rel, frames, fps, audio=audio, audio_rate=audio_rate, crf=crf)
    written = count_frames(out_dir / rel)
    if written != n:
        raise MediaError(f"{out_dir / rel}: expected {n} frames after encoding, found {written}")
    media = {"path": rel.as_posix(), "n_frames": n, "size": size, "sha256": sha256_file(out_dir / rel),
             "has_audio": audio is not None and len(audio) > 0, "frames_dir": None, "wav_path": None}
    if png_frames:
        from PIL import Image

        folder = Path("clips") / clip_id
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames):
            target = out_dir / folder / f"{i:05d}.png"
            tmp = target.with_suffix(".png.tmp")
            Image.fromarray(frame).save(tmp, format="PNG")
            os.replace(tmp, target)
        media["frames_dir"] = folder.as_posix()
    if wav and audio is not None:
        wav_rel = Path("clips") / f"{clip_id}.wav"
        tmp = out_dir / (wav_rel.as_posix() + ".tmp")
        write_wav(tmp, audio, audio_rate)
        os.replace(tmp, out_dir / wav_rel)
        media["wav_path"] = wav_rel.as_posix()
    return media


class ExportStep(Step):
    """Selected clip row → the same row with its exported media columns (path, n_frames, size, sha256, ...)."""

    def __init__(self, export_config, audio_rate: int = 16000):
        self.export = export_config
        self.audio_rate = audio_rate

    @property
    def name(self) -> str:
        return "export"

    def run(self, rows, rank=0, world_size=1):
        for row in rows:
            try:
                media = export_clip(row, row["out_dir"], self.export.size, self.export.crf, self.export.png_frames,
                                    self.export.wav, self.audio_rate)
            except MediaError as exc:
                self.reject(row["clip_id"], "export_failed", source_id=row.get("source_id"),
                            candidate_id=row.get("candidate_id"), error=str(exc))
                continue
            self.count("frames", media["n_frames"])
            yield {**row, **media}
