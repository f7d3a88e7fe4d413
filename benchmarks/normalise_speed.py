"""Normalise throughput: the acquire pipeline (link, probe, one ffmpeg pass, frame-count check, sha256, manifests)
against a bare ffmpeg run of the same command, in source-seconds per wall-second. Target: pipeline ≥ 90 % of bare.

Source-seconds per CPU-second (this process and its children) are printed too: on a shared machine the wall-clock
ratio moves with other people's load, the CPU ratio much less.

    python benchmarks/normalise_speed.py [--seconds 20] [--height 720] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_source(path: Path, seconds: float, height: int) -> Path:
    """The astronaut portrait panned across a 16:9 frame at 25 fps, with espeak-ng speech: real material."""
    from PIL import Image
    from skimage.data import astronaut

    from talkbench.media import read_audio, write_video

    width = int(round(height * 16 / 9 / 2)) * 2
    big = np.asarray(Image.fromarray(astronaut()).resize((height + 64, height + 64), Image.BICUBIC))
    canvas = np.zeros((height, width, 3), np.uint8)
    n = int(seconds * 25)

    def frames():
        for i in range(n):
            x = int((width - height) / 2 + (width - height) / 3 * np.sin(i / 40))
            dy = int(32 + 24 * np.sin(i / 13))
            frame = canvas.copy()
            frame[:, x:x + height] = big[dy:dy + height, 32:32 + height]
            yield frame

    wav = path.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-w", str(wav), "This is a benchmark of the normalisation stage. " * 8], check=True)
    speech = read_audio(wav, 44100)
    audio = np.resize(speech, int(seconds * 44100))
    return write_video(path, frames(), 25, audio=audio, audio_rate=44100, crf=20)


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bare(src: Path, out: Path, spans: list[tuple[float, float]], duration: float) -> float:
    from talkbench.curation.normalise import ffmpeg_command

    t0 = time.perf_counter()
    for i, (start, end) in enumerate(spans or [(0.0, duration)]):
        n = int(round((end - start) * 25))
        subprocess.run(ffmpeg_command(src, out / f"{i}.mp4", start=start, n_frames=n), check=True)
    return time.perf_counter() - t0


def pipeline(src: Path, out: Path, spans: list[tuple[float, float]]) -> float:
    from talkbench.curation.config import CurationConfig
    from talkbench.curation.pipeline import build_manifest
    from talkbench.runtime import make_executor

    lines = [f"{src},{s},{e}" for s, e in spans] or [f"{src}"]
    (out.parent / "l.csv").write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    build_manifest([out.parent / "l.csv"], out, CurationConfig(), make_executor("local", quiet=True), until="acquire")
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tb-normbench-"))
    try:
        src = make_source(work / "src.mp4", args.seconds, args.height)
        third = args.seconds / 3
        cases = {"whole video": [], "3 spans": [(0.5, third), (third + 0.3, 2 * third), (2 * third + 0.1, args.seconds)]}
        print(f"source: {args.seconds:.0f} s at {args.height}p, 25 fps, AAC 44.1 kHz; {args.repeats} repeats, median")
        rows = []
        for name, spans in cases.items():
            covered = sum(e - s for s, e in spans) if spans else args.seconds
            t_bare, t_pipe, c_bare, c_pipe = [], [], [], []
            for r in range(args.repeats):
                for fn, times, cpus in ((bare, t_bare, c_bare), (pipeline, t_pipe, c_pipe)):
                    out = work / f"{name.replace(' ', '_')}-{fn.__name__}-{r}" / "out"
                    out.mkdir(parents=True)
                    c0 = cpu_seconds()
                    times.append(fn(src, out, spans, args.seconds) if fn is bare else fn(src, out, spans))
                    cpus.append(cpu_seconds() - c0)
                    shutil.rmtree(out.parent)
            b, p = covered / statistics.median(t_bare), covered / statistics.median(t_pipe)
            cb, cp = covered / statistics.median(c_bare), covered / statistics.median(c_pipe)
            rows.append((name, covered, b, p, cb, cp))
        print(f"{'case':<12} {'source s':>9} {'bare s/wall-s':>14} {'pipeline s/wall-s':>18} {'ratio':>7} "
              f"{'bare s/cpu-s':>13} {'pipeline s/cpu-s':>17} {'ratio':>7}")
        for name, covered, b, p, cb, cp in rows:
            print(f"{name:<12} {covered:>9.1f} {b:>14.2f} {p:>18.2f} {p / b:>6.1%} {cb:>13.2f} {cp:>17.2f} "
                  f"{cp / cb:>6.1%}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
