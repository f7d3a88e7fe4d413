"""Clip-stage curation speed on a 720p input, per stage, against decode-only throughput of the same file.

The input is generated here from real photos: 1280×720, 25 fps, two shots (the astronaut, then a person of
insightface's t1.jpg) with a face of about 300 px and espeak-ng speech. Stages, timed in one process:

- decode:    ffmpeg decode of every frame at full size (the limit: nothing can curate faster than it decodes);
- scenes:    SceneStep's shot detection (its own decode, scaled to 256 px wide, + PySceneDetect ContentDetector);
- detect:    decode at the sample rate (5 fps) + the face detector on each sampled frame;
- landmarks: the face mesh on each detected box + the head-pose estimate + the face's sharpness;
- track:     IoU tracking and the candidate summary (crop box, statistics);
- clip stage: SceneStep → FaceStep → filters end to end, as the pipeline runs it.

Throughput is source-video seconds per wall second, and per CPU second (this process plus its ffmpeg children),
which is the "per core" figure: a worker per core gets about that much. Targets from issue 3: the clip stage
≥ 1× real time per core, and detection ≤ 3× the decode time.

    python benchmarks/curation_speed.py [--seconds 10] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from talkbench.curation.config import CurationConfig  # noqa: E402
from talkbench.curation.faces import (FaceStep, sampled_frame_index, sharpness, summarise_track,  # noqa: E402
                                      track_faces)
from talkbench.curation.filters import make_filters  # noqa: E402
from talkbench.faces.points import five_points_from_mesh  # noqa: E402
from talkbench.faces.pose import pose_from_points  # noqa: E402
from talkbench.curation.scenes import SceneStep, detect_cuts, segment_row  # noqa: E402
from talkbench.demo import load_photo, render_portrait, speech  # noqa: E402
from talkbench.media import iter_frames, write_video  # noqa: E402
from talkbench.faces.detect import Detection, MediaPipeBackend  # noqa: E402
from talkbench.runtime import StepContext  # noqa: E402


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    """Accumulates wall and CPU seconds per stage name."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def add(self, name: str, wall: float, cpu: float = float("nan")) -> None:
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu


def make_input(folder: Path, seconds: float) -> Path:
    half = seconds / 2
    second = "person_b" if load_photo("person_b") is not None else "astronaut"
    a = render_portrait("astronaut", "sway", half, size=(1280, 720))[0]
    b = render_portrait(second, "nod", half, size=(1280, 720))[0]
    audio = speech("This benchmark curates a seven twenty p talking head video with two shots.", "en-us", seconds)
    return write_video(folder / "bench720.mp4", np.concatenate([a, b]), 25.0, audio=audio)


def run_stages(path: Path, config: CurationConfig, clock: Clock) -> float:
    seg = segment_row(path, "bench")
    fps = seg["fps"]
    # decode only (the limit)
    t, c = time.perf_counter(), cpu_seconds()
    n = sum(len(chunk) for chunk in iter_frames(path))
    clock.add("decode (all frames, full size)", time.perf_counter() - t, cpu_seconds() - c)
    # scenes
    t, c = time.perf_counter(), cpu_seconds()
    detect_cuts(path, fps, config.scenes, seg["width"], seg["height"])
    clock.add("scenes (256-px decode + ContentDetector)", time.perf_counter() - t, cpu_seconds() - c)
    # detect / landmarks / track, timed inside one sampled decode
    backend = MediaPipeBackend(config.faces.min_confidence)
    sample_fps = config.faces.sample_fps
    per_sample, decode_wait, t_detect, t_mesh = [], 0.0, 0.0, 0.0
    t_all, c_all = time.perf_counter(), cpu_seconds()
    frames = iter_frames(path, fps=sample_fps)
    k = 0
    while True:
        t0 = time.perf_counter()
        chunk = next(frames, None)
        decode_wait += time.perf_counter() - t0
        if chunk is None:
            break
        for frame in chunk:
            t0 = time.perf_counter()
            boxes = backend.boxes(frame)
            t1 = time.perf_counter()
            dets = []
            for box, score, kps in boxes:
                pts = backend.landmarks(frame, box, kps)
                if pts is not None:
                    yaw, pitch, roll = pose_from_points(pts)
                    dets.append(Detection(box, score, five_points_from_mesh(pts).tolist(), yaw, pitch, roll,
                                          sharpness(frame, box)))
            t2 = time.perf_counter()
            t_detect += t1 - t0
            t_mesh += t2 - t1
            per_sample.append((sampled_frame_index(k, fps, sample_fps), dets))
            k += 1
    cpu_faces = cpu_seconds() - c_all
    wall_faces = time.perf_counter() - t_all
    t0 = time.perf_counter()
    tracks = track_faces(per_sample, config.faces.iou_threshold, config.faces.max_gap_samples)
    shot = dict(seg, shot_index=0, shot_start_frame=0, shot_end_frame=n)
    for track in tracks:
        summarise_track(track, shot, config.faces.crop_margin, (per_sample[0][0], per_sample[-1][0]))
    t_track = time.perf_counter() - t0
    backend.close()
    share = cpu_faces / max(wall_faces, 1e-9)  # CPU per wall second in the face loop, split over its parts
    clock.add("detect: decode at 5 fps", decode_wait, decode_wait * share)
    clock.add("detect: face detector", t_detect, t_detect * share)
    clock.add("landmarks + pose (mesh)", t_mesh, t_mesh * share)
    clock.add("track + summary", t_track, float("nan"))
    # the whole clip stage as the pipeline runs it
    t, c = time.perf_counter(), cpu_seconds()
    rows = [seg]
    for step in [SceneStep(config), FaceStep(config), *make_filters(config)]:
        step.ctx = StepContext(step.name)
        rows = list(step.run(rows))
    clock.add("clip stage (scenes → faces → filters)", time.perf_counter() - t, cpu_seconds() - c)
    if len(rows) != 2:
        print(f"warning: expected 2 kept candidates (one per shot), got {len(rows)}", file=sys.stderr)
    return n / fps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the generated 720p input")
    parser.add_argument("--repeat", type=int, default=1, help="runs to sum (reduces noise)")
    args = parser.parse_args(argv)
    config = CurationConfig()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_input(Path(tmp), args.seconds)
        clock = Clock()
        video_s = 0.0
        for _ in range(args.repeat):
            video_s += run_stages(path, config, clock)
    print(f"input: 1280x720, 25 fps, {video_s / args.repeat:.1f} s × {args.repeat} run(s); "
          f"{os.cpu_count()} CPUs visible; load average {os.getloadavg()[0]:.1f}")
    print(f"{'stage':44s} {'wall s':>8s} {'cpu s':>8s} {'video s / wall s':>17s} {'video s / cpu s':>16s}")
    for name in clock.wall:
        wall, cpu = clock.wall[name], clock.cpu[name]
        per_cpu = f"{video_s / cpu:16.2f}" if cpu == cpu and cpu > 0 else f"{'-':>16s}"
        print(f"{name:44s} {wall:8.2f} {cpu:8.2f} {video_s / wall:17.2f} {per_cpu}")
    decode = clock.wall["decode (all frames, full size)"]
    detect = clock.wall["detect: decode at 5 fps"] + clock.wall["detect: face detector"]
    stage_cpu = clock.cpu["clip stage (scenes → faces → filters)"]
    print(f"detection (sampled decode + detector) / full decode time: {detect / decode:.2f}×  (target ≤ 3×)")
    print(f"clip stage: {video_s / stage_cpu:.2f}× real time per core  (target ≥ 1×)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
