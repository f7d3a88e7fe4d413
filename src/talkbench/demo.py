"""Demo material for the curation pipeline, generated from real media on this machine.

Real portrait photos (scikit-image's astronaut; two people of insightface's ``t1.jpg`` group photo, upscaled so the
face box is about 300 px) are animated with a known head motion (translation, scale and a small in-plane rotation
about the face centre, applied with ``cv2.warpAffine``) and get espeak-ng speech muxed in. Beside them: videos built to
fail one rule each (a small face, a face rolled past 60°, two equal faces, no audio, a shot shorter than the minimum
inside a hard-cut video), Debian's Megamind.avi and a street scene with no usable face (vtest.avi).

``make_demo(out_dir)`` writes the videos, ``motion.json`` (the applied motion of every frame) and ``sources.csv``
(``url,start,end,identity``) for ``curate build-manifest``. The output is deterministic: the motion is a fixed
function of time and ``write_video`` encodes bit-exactly. Every passing identity gets ≥ 2 passing clips, so the
curated demo has ≥ 3 identities with ≥ 2 clips each and a test split exists.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MediaError, MissingDependencyError

FPS = 25.0
WIDTH, HEIGHT = 960, 720  # 4:3 keeps the neighbours of the t1 faces out of frame
AUDIO_RATE = 16000
FACE_SIZE = 300.0  # target detector box side (px) of a passing face
ROLLED_FACE_SIZE = 360.0
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


@dataclass(frozen=True)
class Portrait:
    """A face in a real photo: the detector box (measured with the MediaPipe backend on the photo) and a voice."""

    name: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the photo
    voice: str
    text: str

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


PORTRAITS = {
    "astronaut": Portrait("astronaut", (173.5, 67.5, 278.0, 172.0), "en-us+f3",
                          "Hello. This is a short demonstration of talking head curation with a real portrait photo."),
    "person_b": Portrait("person_b", (457.0, 294.0, 573.0, 409.0), "en+m3",
                         "Every clip keeps the natural head motion inside one fixed square crop."),
    "person_c": Portrait("person_c", (729.0, 365.0, 836.0, 472.0), "en-gb+m5",
                         "Faces smaller than two hundred fifty six pixels are rejected before export."),
}


def t1_path() -> Path | None:
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / "t1.jpg"
    return path if path.exists() else None


def load_photo(name: str) -> np.ndarray | None:
    """RGB uint8 photo of a portrait, or None when its package is not installed."""
    if name == "astronaut":
        from skimage import data

        return data.astronaut()
    path = t1_path()
    if path is None:
        return None
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------------------------- motion

MOTIONS = {
    # name: (dx px, dy px, scale fraction, rotation deg) amplitudes; periods in seconds differ so paths never repeat
    "sway": (20.0, 10.0, 0.00, 4.0),
    "zoom": (12.0, 6.0, 0.04, -3.0),
    "nod": (8.0, 18.0, 0.02, 2.0),
}


def motion_at(kind: str, t: float) -> dict:
    """Known head motion at time t: offsets from the frame centre, scale factor, in-plane rotation (degrees, CCW)."""
    if kind == "roll_ramp":  # turns from 0° to 75° over the clip's first 3 s, then holds
        return {"dx": 0.0, "dy": 0.0, "scale": 1.0, "rotation": 75.0 * min(1.0, t / 3.0)}
    if kind not in MOTIONS:
        raise ValueError(f"unknown demo motion {kind!r}; choose from {sorted([*MOTIONS, 'roll_ramp'])}")
    ax, ay, az, ar = MOTIONS[kind]
    return {"dx": ax * math.sin(2 * math.pi * t / 2.0), "dy": ay * math.sin(2 * math.pi * t / 3.0),
            "scale": 1.0 + az * math.sin(2 * math.pi * t / 2.5), "rotation": ar * math.sin(2 * math.pi * t / 2.2)}


def render_frame(photo: np.ndarray, portrait: Portrait, motion: dict, face_size: float, size: tuple[int, int],
                 centre: tuple[float, float] | None = None) -> np.ndarray:
    """One frame: the photo scaled so the face box is ``face_size``, rotated about the face, face at ``centre``."""
    import cv2

    w, h = size
    cx, cy = centre or (w / 2, h / 2)
    fx, fy = portrait.centre
    mat = cv2.getRotationMatrix2D((fx, fy), motion["rotation"], face_size / portrait.size * motion["scale"])
    mat[:, 2] += (cx + motion["dx"] - fx, cy + motion["dy"] - fy)
    return cv2.warpAffine(photo, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def render_portrait(name: str, kind: str, seconds: float, face_size: float = FACE_SIZE,
                    size: tuple[int, int] = (WIDTH, HEIGHT), t0: float = 0.0) -> tuple[np.ndarray, list[dict]]:
    """(T, H, W, 3) frames of one animated portrait, and the motion applied to each frame."""
    photo = load_photo(name)
    if photo is None:
        raise MissingDependencyError(f"portrait {name!r} needs insightface's t1.jpg; install it with: "
                                     "pip install --no-deps insightface")
    n = int(round(seconds * FPS))
    motions = [motion_at(kind, t0 + i / FPS) for i in range(n)]
    frames = np.stack([render_frame(photo, PORTRAITS[name], m, face_size, size) for m in motions])
    return frames, motions


def render_pair(left: str, right: str, seconds: float, face_size: float = FACE_SIZE,
                size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    """Two portraits side by side, each centred in its half of the frame, with the same face size."""
    w, h = size
    halves = [render_portrait(name, kind, seconds, face_size, (w // 2, h))[0]
              for name, kind in ((left, "sway"), (right, "nod"))]
    return np.concatenate(halves, axis=2)


# ----------------------------------------------------------------------------------------------- speech


def speech(text: str, voice: str, seconds: float, rate: int = AUDIO_RATE) -> np.ndarray:
    """espeak-ng speech (mono float32 at ``rate``), repeated and cut to exactly ``seconds``."""
    from .media import read_audio

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MissingDependencyError("espeak-ng is not on PATH; install it with: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        proc = subprocess.run([exe, "-v", voice, "-s", "160", "-w", str(wav), text], capture_output=True, text=True)
        if proc.returncode != 0 or not wav.exists():
            raise MediaError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.strip()[-200:]}")
        audio = read_audio(wav, rate)
    n = int(round(seconds * rate))
    reps = int(math.ceil(n / max(len(audio), 1)))
    # write_video muxes with -shortest: the audio must last as long as the video, or the video is cut.
    return np.tile(audio, reps)[:n].astype(np.float32)


# ----------------------------------------------------------------------------------------------- demo set


@dataclass(frozen=True)
class DemoVideo:
    file: str
    identity: str | None
    expect: str  # "keep" or the rejection reason the curation should give (documentation and tests)
    note: str


def _plan(have_t1: bool) -> list[DemoVideo]:
    people = ["astronaut", "person_b", "person_c"] if have_t1 else ["astronaut"]
    plan = []
    for name in people:
        for kind in ("sway", "zoom"):
            plan.append(DemoVideo(f"{name}_{kind}.mp4", name, "keep", f"{name}, {kind} motion, 3 s, speech"))
    plan += [
        DemoVideo("small_face.mp4", "astronaut", "face_too_small", "astronaut face box 150 px"),
        DemoVideo("rolled.mp4", "astronaut", "pose_too_large", "astronaut rolled 0→75° in 3 s"),
        DemoVideo("hard_cut.mp4", None, "keep+shot_too_short",
                  "three shots: astronaut 2.8 s | person 2.6 s | person 0.6 s (too short)"),
        DemoVideo("megamind.avi", None, "mixed", "Debian opencv-doc Megamind.avi (cartoon, 4 shots)"),
        DemoVideo("street_no_face.mp4", None, "no_face", "first 4 s of opencv-doc vtest.avi"),
    ]
    if have_t1:
        plan += [
            DemoVideo("two_faces.mp4", None, "multiple_faces", "person_b and person_c side by side, equal size"),
            DemoVideo("no_audio.mp4", "person_c", "no_audio", "person_c, nod motion, no audio stream"),
        ]
    return plan


DEMO_CONFIG = "curate.yaml"  # written beside sources.csv: the demo's curation settings (its split)


def make_demo(out_dir: str | Path, seconds: float = 3.0) -> Path:
    """Write the demo videos, ``motion.json`` and ``sources.csv`` into ``out_dir``; returns the sources.csv path."""
    from .media import read_frames, write_video

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    have_t1 = t1_path() is not None
    plan = _plan(have_t1)
    motion_log: dict[str, object] = {}
    voice = {name: speech(p.text, p.voice, 8.0) for name, p in PORTRAITS.items() if have_t1 or name == "astronaut"}

    def audio(name: str, secs: float) -> np.ndarray:
        return voice[name][: int(round(secs * AUDIO_RATE))]

    for item in plan:
        path = out / item.file
        stem = item.file.rsplit(".", 1)[0]
        if item.expect == "keep" and item.identity:
            kind = stem.rsplit("_", 1)[1]
            frames, motions = render_portrait(item.identity, kind, seconds)
            write_video(path, frames, FPS, audio=audio(item.identity, seconds))
            motion_log[item.file] = {"portrait": item.identity, "face_size": FACE_SIZE, "motion": motions}
        elif item.file == "small_face.mp4":
            frames, motions = render_portrait("astronaut", "sway", seconds, face_size=150.0)
            write_video(path, frames, FPS, audio=audio("astronaut", seconds))
            motion_log[item.file] = {"portrait": "astronaut", "face_size": 150.0, "motion": motions}
        elif item.file == "rolled.mp4":
            # A larger face: the detector box of a face rolled by 45° or more is smaller than the upright one.
            frames, motions = render_portrait("astronaut", "roll_ramp", 4.0, face_size=ROLLED_FACE_SIZE)
            write_video(path, frames, FPS, audio=audio("astronaut", 4.0))
            motion_log[item.file] = {"portrait": "astronaut", "face_size": ROLLED_FACE_SIZE, "motion": motions}
        elif item.file == "hard_cut.mp4":
            second, third = ("person_b", "person_c") if have_t1 else ("astronaut", "astronaut")
            parts = [render_portrait("astronaut", "sway", 2.8)[0],
                     render_portrait(second, "nod", 2.6, t0=1.0)[0],
                     render_portrait(third, "zoom", 0.6)[0]]
            if not have_t1:  # one identity only: make the cuts visible with a mirrored, zoomed copy
                parts[1] = parts[1][:, :, ::-1].copy()
            frames = np.concatenate(parts)
            write_video(path, frames, FPS, audio=audio("astronaut", len(frames) / FPS))
            motion_log[item.file] = {"cuts": [len(parts[0]), len(parts[0]) + len(parts[1])],
                                     "shots": ["astronaut", second, third]}
        elif item.file == "megamind.avi":
            shutil.copyfile(OPENCV_DATA / "Megamind.avi", path)
        elif item.file == "street_no_face.mp4":
            write_video(path, read_frames(OPENCV_DATA / "vtest.avi", duration=4.0), 10.0)
        elif item.file == "two_faces.mp4":
            frames = render_pair("person_b", "person_c", seconds)
            write_video(path, frames, FPS, audio=audio("person_b", seconds))
        elif item.file == "no_audio.mp4":
            frames, motions = render_portrait("person_c", "nod", seconds)
            write_video(path, frames, FPS)
            motion_log[item.file] = {"portrait": "person_c", "face_size": FACE_SIZE, "motion": motions}
    (out / "motion.json").write_text(json.dumps(motion_log, indent=1, sort_keys=True))
    sources = out / "sources.csv"
    with open(sources, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["url", "start", "end", "identity"])
        for item in plan:
            writer.writerow([item.file, "", "", item.identity or ""])
    # Three identities; 0.6 × 3 rounds to 2 test identities, so the test split can pair sources and drivers of two
    # different people (cross-reenact) and one identity remains for training.
    (out / "curate.yaml").write_text(f"# curate build-manifest {sources.name} --config {DEMO_CONFIG}\n"
                                     "split:\n  test_fraction: 0.6\n")
    (out / "expected.json").write_text(json.dumps({i.file: {"identity": i.identity, "expect": i.expect,
                                                           "note": i.note} for i in plan}, indent=1, sort_keys=True))
    return sources
