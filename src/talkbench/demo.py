"""Demo material for the curation pipeline, generated from real media on this machine.

Real portrait photos (scikit-image's astronaut; two people of insightface's ``t1.jpg`` group photo, upscaled so the
face box is about 300 px) are animated with a known head motion (translation, scale and a small in-plane rotation
about the face centre, applied with ``cv2.warpAffine``) and get espeak-ng speech muxed in. They talk: the lower face
is warped by a smooth displacement field (a jaw drop below the mouth line, ``cv2.remap``) whose size follows the
speech envelope frame by frame, so the curated demo has an audio→motion relationship; the envelope and the applied
opening of every talking video are stored beside it (``<video>.npz``). With ``head_turns`` (``demo make
--head-turns``) the talking portraits also turn out of plane (yaw and pitch of a sphere-warped face,
:func:`turn_head`). Beside them: videos built to fail one rule each (a small face, a face rolled past 60°, two equal
faces, no audio, a shot shorter than the minimum inside a hard-cut video), Debian's Megamind.avi and a street scene
with no usable face (vtest.avi).

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
SPEECH_OFFSETS = {"sway": 0.0, "zoom": 3.0}  # where in its person's 8 s of speech each talking clip starts (s)
ROLLED_FACE_SIZE = 360.0
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


@dataclass(frozen=True)
class Portrait:
    """A face in a real photo: the detector box (measured with the MediaPipe backend on the photo) and a voice."""

    name: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the photo
    voice: str
    text: str
    mouth: tuple[float, float] = (0.0, 0.0)  # inner-lip midpoint in the photo (Face Mesh 13/14, measured)
    chin: float = 0.0  # chin y in the photo (Face Mesh 152, measured)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


PORTRAITS = {
    "astronaut": Portrait("astronaut", (173.5, 67.5, 278.0, 172.0), "en-us+f3",
                          "Hello. This is a short demonstration of talking head curation with a real portrait photo.",
                          (222.9, 146.2), 175.7),
    "person_b": Portrait("person_b", (457.0, 294.0, 573.0, 409.0), "en+m3",
                         "Every clip keeps the natural head motion inside one fixed square crop.", (505.0, 383.4), 410.5),
    "person_c": Portrait("person_c", (729.0, 365.0, 836.0, 472.0), "en-gb+m5",
                         "Faces smaller than two hundred fifty six pixels are rejected before export.", (780.7, 446.7),
                         476.4),
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


# Out-of-plane head turns of the talking clips (yaw, pitch amplitudes in degrees; periods in seconds). The face is
# treated as a sphere and rotated (:func:`turn_head`); the face module reads about 0.55 of the applied angle (a photo
# has no back of the head: on the astronaut, +-20 deg applied reads +-11 deg of yaw, +11 deg of pitch change).
TURNS = {"sway": (18.0, 14.0), "zoom": (14.0, 18.0)}
TURN_PERIODS = (2.6, 1.8)
HEAD_RADIUS = 0.75  # the sphere's radius, fraction of the face box side


def motion_at(kind: str, t: float, turn: bool = False) -> dict:
    """Known head motion at time t: offsets from the frame centre, scale factor, in-plane rotation (degrees, CCW)."""
    if kind == "roll_ramp":  # turns from 0° to 75° over the clip's first 3 s, then holds
        return {"dx": 0.0, "dy": 0.0, "scale": 1.0, "rotation": 75.0 * min(1.0, t / 3.0)}
    if kind not in MOTIONS:
        raise ValueError(f"unknown demo motion {kind!r}; choose from {sorted([*MOTIONS, 'roll_ramp'])}")
    ax, ay, az, ar = MOTIONS[kind]
    motion = {"dx": ax * math.sin(2 * math.pi * t / 2.0), "dy": ay * math.sin(2 * math.pi * t / 3.0),
              "scale": 1.0 + az * math.sin(2 * math.pi * t / 2.5), "rotation": ar * math.sin(2 * math.pi * t / 2.2)}
    if turn:  # "Known head motion ... with turn": yaw and pitch as well (only the kinds in TURNS turn)
        if kind not in TURNS:
            raise ValueError(f"demo motion {kind!r} has no head turn; choose from {sorted(TURNS)}")
        (yaw, pitch), (py, pp) = TURNS[kind], TURN_PERIODS
        motion.update(yaw=yaw * math.sin(2 * math.pi * t / py), pitch=pitch * math.sin(2 * math.pi * t / pp))
    return motion


# ----------------------------------------------------------------------------------------------- talking

# jaw drop at full envelope, as a fraction of the face box side (measured: the lip gap grows by 0.03…0.09 inter-ocular
# distances; the lip gap of the rendered demo videos correlates 0.75…0.95 with the envelope)
JAW_DROP = 0.07
LIP_BAND = 0.03  # half-height of the band around the lip line that stretches open, fraction of the face box


def speech_envelope(audio: np.ndarray, fps: float = FPS, rate: int = AUDIO_RATE) -> np.ndarray:
    """(T,) loudness per video frame in [0, 1]: the RMS of the frame's samples over the 95th percentile of the
    utterance's frames, clipped. One home for the envelope the demo mouths follow and the tests measure against."""
    hop = int(round(rate / fps))
    n = len(audio) // hop
    rms = np.sqrt((np.asarray(audio[: n * hop], np.float64).reshape(n, hop) ** 2).mean(1))
    ref = np.percentile(rms, 95) if n else 1.0
    return np.clip(rms / max(ref, 1e-8), 0.0, 1.0).astype(np.float32)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def open_mouth(photo: np.ndarray, portrait: Portrait, opening: float) -> np.ndarray:
    """The photo with the jaw dropped by ``opening`` (0..1 of ``JAW_DROP``): a smooth vertical displacement field below
    the mouth line (``cv2.remap`` of a region around the lower face; nothing is pasted). In the output, a band around
    the lip line stretches by the drop (its slope stays < 1, so the map never folds), the chin moves down by the drop,
    and the displacement fades out below the chin and sideways (Gaussian over the jaw width)."""
    import cv2

    if opening <= 0:
        return photo
    s = portrait.size
    mx, my = portrait.mouth
    drop, band = JAW_DROP * s * float(opening), LIP_BAND * s
    x0, x1 = int(max(0, mx - 0.8 * s)), int(min(photo.shape[1], mx + 0.8 * s))
    y0, y1 = int(max(0, my - 0.2 * s)), int(min(photo.shape[0], portrait.chin + 0.45 * s))
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    top, height = my - band, 2 * band + 1.6 * drop  # max slope 1.5·drop/height < 1
    fade = 1.0 - _smoothstep((ys - portrait.chin) / (0.3 * s))  # 1 down to the chin, 0 at 0.3 s below it
    disp = drop * _smoothstep((ys - top) / height) * fade * np.exp(-(((xs - mx) / (0.3 * s)) ** 2))
    out = photo.copy()
    out[y0:y1, x0:x1] = cv2.remap(photo, xs, ys - disp, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out


def turn_head(photo: np.ndarray, portrait: Portrait, yaw: float, pitch: float) -> np.ndarray:
    """The photo with the head turned out of plane by ``yaw`` / ``pitch`` degrees: the face is a sphere of radius
    ``HEAD_RADIUS`` × the face box about the box centre, rotated (yaw about the vertical axis, then pitch about the
    horizontal one) and seen from the front; the map blends back to the identity outside the face (``cv2.remap`` of a
    region around it; nothing is pasted)."""
    import cv2

    if not yaw and not pitch:
        return photo
    cx, cy = portrait.centre
    radius = HEAD_RADIUS * portrait.size
    x0, x1 = int(max(0, cx - 1.7 * radius)), int(min(photo.shape[1], cx + 1.7 * radius))
    y0, y1 = int(max(0, cy - 1.7 * radius)), int(min(photo.shape[0], cy + 1.7 * radius))
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    u, v = (xs - cx) / radius, (ys - cy) / radius
    z = np.sqrt(np.clip(1 - u * u - v * v, 0, 1))
    a, b = math.radians(yaw), math.radians(pitch)
    # the visible point (u, v, z) of the turned sphere came from the photo's point rotated back
    su = u * math.cos(a) - z * math.sin(a)
    sz = u * math.sin(a) + z * math.cos(a)
    sv = v * math.cos(b) + sz * math.sin(b)
    w = np.exp(-6.0 * np.clip(u * u + v * v - 0.5, 0, None))  # 1 on the face, ~0 from 1.5 radii out
    map_x = (cx + radius * (w * su + (1 - w) * u)).astype(np.float32)
    map_y = (cy + radius * (w * sv + (1 - w) * v)).astype(np.float32)
    out = photo.copy()
    out[y0:y1, x0:x1] = cv2.remap(photo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out


def render_frame(photo: np.ndarray, portrait: Portrait, motion: dict, face_size: float, size: tuple[int, int],
                 centre: tuple[float, float] | None = None) -> np.ndarray:
    """One frame: the photo scaled so the face box is ``face_size``, rotated about the face, face at ``centre``;
    with ``motion["opening"]`` (0..1) the jaw is dropped first (:func:`open_mouth`), then with ``motion["yaw"]`` /
    ``motion["pitch"]`` the head turns out of plane (:func:`turn_head`)."""
    import cv2

    if motion.get("opening"):
        photo = open_mouth(photo, portrait, motion["opening"])
    if motion.get("yaw") or motion.get("pitch"):
        photo = turn_head(photo, portrait, motion.get("yaw", 0.0), motion.get("pitch", 0.0))

    w, h = size
    cx, cy = centre or (w / 2, h / 2)
    fx, fy = portrait.centre
    mat = cv2.getRotationMatrix2D((fx, fy), motion["rotation"], face_size / portrait.size * motion["scale"])
    mat[:, 2] += (cx + motion["dx"] - fx, cy + motion["dy"] - fy)
    return cv2.warpAffine(photo, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def render_portrait(name: str, kind: str, seconds: float, face_size: float = FACE_SIZE,
                    size: tuple[int, int] = (WIDTH, HEIGHT), t0: float = 0.0,
                    opening: np.ndarray | None = None, turn: bool = False) -> tuple[np.ndarray, list[dict]]:
    """(T, H, W, 3) frames of one animated portrait, and the motion applied to each frame; ``opening`` (T,) in
    [0, 1] makes it talk (the speech envelope, :func:`speech_envelope`); ``turn`` adds the kind's yaw and pitch
    (``TURNS``)."""
    photo = load_photo(name)
    if photo is None:
        raise MissingDependencyError(f"portrait {name!r} needs insightface's t1.jpg; install it with: "
                                     "pip install --no-deps insightface")
    n = int(round(seconds * FPS))
    motions = [motion_at(kind, t0 + i / FPS, turn) for i in range(n)]
    if opening is not None:
        if len(opening) < n:
            raise ValueError(f"opening has {len(opening)} values for {n} frames")
        motions = [{**m, "opening": round(float(o), 4)} for m, o in zip(motions, opening)]
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


def make_demo(out_dir: str | Path, seconds: float = 3.0, head_turns: bool = False) -> Path:
    """Write the demo videos, ``motion.json`` and ``sources.csv`` into ``out_dir``; returns the sources.csv path.
    ``head_turns``: the talking portraits also turn their heads (``TURNS``: yaw and pitch), the material nod and shake
    can be learnt from (off by default: the default material is what the pinned demo figures are measured on)."""
    from .media import read_frames, write_video

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    have_t1 = t1_path() is not None
    plan = _plan(have_t1)
    motion_log: dict[str, object] = {}
    voice_secs = max(8.0, seconds + max(SPEECH_OFFSETS.values()) + 1.0)
    voice = {name: speech(p.text, p.voice, voice_secs) for name, p in PORTRAITS.items()
             if have_t1 or name == "astronaut"}

    def audio(name: str, secs: float, t0: float = 0.0) -> np.ndarray:
        start = int(round(t0 * AUDIO_RATE))
        return voice[name][start: start + int(round(secs * AUDIO_RATE))]

    def talking(name: str, kind: str, secs: float, face_size: float = FACE_SIZE, t0: float = 0.0,
                speech_t0: float = 0.0, turn: bool = False) -> tuple[np.ndarray, list[dict], np.ndarray, np.ndarray]:
        sound = audio(name, secs, speech_t0)
        env = speech_envelope(sound)
        frames, motions = render_portrait(name, kind, secs, face_size, t0=t0, opening=env, turn=turn)
        return frames, motions, sound, env

    def save_envelope(path: Path, env: np.ndarray) -> None:
        np.savez(path.with_suffix(".npz"), envelope=env, opening=env, jaw_drop=np.float32(JAW_DROP),
                 fps=np.float32(FPS))

    for item in plan:
        path = out / item.file
        stem = item.file.rsplit(".", 1)[0]
        if item.expect == "keep" and item.identity:
            kind = stem.rsplit("_", 1)[1]
            # the two clips of a person speak different parts of the utterance, so the train split hears more speech
            frames, motions, sound, env = talking(item.identity, kind, seconds, speech_t0=SPEECH_OFFSETS[kind],
                                                  turn=head_turns)
            write_video(path, frames, FPS, audio=sound)
            save_envelope(path, env)
            motion_log[item.file] = {"portrait": item.identity, "face_size": FACE_SIZE, "motion": motions}
        elif item.file == "small_face.mp4":
            frames, motions, sound, env = talking("astronaut", "sway", seconds, face_size=150.0)
            write_video(path, frames, FPS, audio=sound)
            save_envelope(path, env)
            motion_log[item.file] = {"portrait": "astronaut", "face_size": 150.0, "motion": motions}
        elif item.file == "rolled.mp4":
            # A larger face: the detector box of a face rolled by 45° or more is smaller than the upright one.
            frames, motions = render_portrait("astronaut", "roll_ramp", 4.0, face_size=ROLLED_FACE_SIZE)
            write_video(path, frames, FPS, audio=audio("astronaut", 4.0))
            motion_log[item.file] = {"portrait": "astronaut", "face_size": ROLLED_FACE_SIZE, "motion": motions}
        elif item.file == "hard_cut.mp4":
            second, third = ("person_b", "person_c") if have_t1 else ("astronaut", "astronaut")
            shots = (("astronaut", "sway", 2.8, 0.0), (second, "nod", 2.6, 1.0), (third, "zoom", 0.6, 0.0))
            lengths = [shot[2] for shot in shots]
            sound = audio("astronaut", sum(lengths))
            env = speech_envelope(sound)
            cut = np.cumsum([0] + [int(round(x * FPS)) for x in lengths])
            parts = [render_portrait(name, kind, secs, t0=t0, opening=env[a:b])[0]
                     for (name, kind, secs, t0), a, b in zip(shots, cut[:-1], cut[1:])]
            if not have_t1:  # one identity only: make the cuts visible with a mirrored, zoomed copy
                parts[1] = parts[1][:, :, ::-1].copy()
            frames = np.concatenate(parts)
            write_video(path, frames, FPS, audio=sound)
            save_envelope(path, env)
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
