"""Upper-body demo material: real photos animated with known head, torso, mouth and hand motion tied to speech.

A portrait 5:7 region of insightface's ``t1.jpg`` (``person_b``: head, shoulders and a raised hand; measured with
MediaPipe on the photo) is scaled so the face is about 190 px, and every frame is one backward warp
(``cv2.remap``) of that still, the sum of four known displacement fields:

- **torso**: a global sway (translation) of the whole frame (the other fields move with it);
- **head**: an in-plane rotation about the neck, weighted by a Gaussian around the face, so the shoulders stay;
- **mouth**: the lower lip and jaw move down by ``MOUTH_GAIN`` × face size × the speech envelope; the field ramps
  from 0 at the upper lip to 1 at the lower lip, so the lips part by warping the lower face (nothing is pasted);
- **hand**: on stressed syllables (peaks of the speech envelope) the raised hand lifts by ``HAND_LIFT`` × face
  size, a raised-cosine bump in time, weighted by a Gaussian around the hand.

The speech is espeak-ng (``talkbench.demo.speech``). ``render_upper(name)`` returns the frames and the ground truth;
``make_upper_demo(out_dir)`` writes each video with an ``.npz`` of its motion beside it (the answer for tests) and
a ``sources.csv`` for ``curate build-manifest --profile upper-body``. Everything is a fixed function of the photo
and the speech, so a rerun writes the same files.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .demo import AUDIO_RATE, FPS, load_photo, speech
from .errors import MissingDependencyError

FRAME_W, FRAME_H = 600, 840  # source frames: portrait 5:7, so the 2:3 crop has room to sit
MOUTH_GAIN = 0.07  # jaw drop at full envelope, × face size
HAND_LIFT = 0.30  # hand raise at a stressed syllable, × face size
HEAD_ROLL = 5.0  # degrees, amplitude of the head's in-plane rotation
TORSO_SWAY = (14.0, 6.0)  # px, amplitude of the torso translation (x, y)
GESTURE_HALF_WIDTH = 6  # frames: half width of a hand bump
PEAK_MIN_GAP = 10  # frames between two stressed syllables
PEAK_LEVEL = 0.6  # a stressed syllable is an envelope peak above this (envelope normalised to its 95th percentile)


@dataclass(frozen=True)
class UpperPortrait:
    """A person in a real photo: the region shown, and landmarks measured on the photo (photo pixels)."""

    photo: str
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 of the photo shown (scaled to the frame)
    face: tuple[float, float, float, float]  # MediaPipe face box
    upper_lip: tuple[float, float]  # face mesh 13
    lower_lip: tuple[float, float]  # face mesh 14
    chin: tuple[float, float]  # face mesh 152
    hand: tuple[float, float] | None  # centre of the visible hand (MediaPipe Hands box centre)
    voice: str
    text: str
    frame: tuple[int, int] = (FRAME_W, FRAME_H)

    @property
    def scale(self) -> float:
        x0, y0, x1, y1 = self.region
        return min(self.frame[0] / (x1 - x0), self.frame[1] / (y1 - y0))

    def to_frame(self, point) -> np.ndarray:
        return (np.asarray(point, np.float64) - self.region[:2]) * self.scale

    @property
    def face_size(self) -> float:
        return max(self.face[2] - self.face[0], self.face[3] - self.face[1]) * self.scale


_ROSS = dict(photo="t1", face=(457.0, 294.0, 573.0, 409.0), upper_lip=(505.4, 380.8), lower_lip=(504.2, 385.6),
             chin=(498.2, 409.9), hand=(650.5, 447.5))
UPPER_PORTRAITS = {
    # head, shoulders and the raised left hand of the man in the middle of t1.jpg
    "person_b": UpperPortrait(region=(332, 230, 698, 742), voice="en+m3",
                              text="Upper body avatars move the head, the shoulders and the hands while they speak.",
                              **_ROSS),
    "person_b_alt": UpperPortrait(region=(332, 230, 698, 742), voice="en-us+m5",
                                  text="Stressed syllables lift the hand, and the jaw follows the loudness of speech.",
                                  **_ROSS),
    # the astronaut, a head shot: no torso in the frame (the profile rejects it as no_torso)
    "astronaut_head": UpperPortrait(photo="astronaut", region=(100, 0, 350, 215), face=(173.5, 67.5, 278.0, 172.0),
                                    upper_lip=(223.5, 142.7), lower_lip=(223.1, 149.6), chin=(221.3, 175.5),
                                    hand=None, voice="en-us+f3", frame=(640, 550),
                                    text="Only a face is visible in this shot."),
    # the same man in a wide, short strip: the 2:3 crop cannot fit (portrait_crop_outside_frame)
    "person_b_wide": UpperPortrait(region=(332, 300, 698, 520), voice="en+m3", frame=(600, 360),
                                   text="A wide and short frame leaves no room for a portrait crop.", **_ROSS),
    # scikit-image's astronaut: head and shoulders, no hands (too_few_hand_frames)
    "astronaut": UpperPortrait(photo="astronaut", region=(73, 0, 439, 512), face=(173.5, 67.5, 278.0, 172.0),
                               upper_lip=(223.5, 142.7), lower_lip=(223.1, 149.6), chin=(221.3, 175.5), hand=None,
                               voice="en-us+f3",
                               text="My hands are out of the picture, so I am not an upper body clip."),
}

# name → (portrait, phase offset in seconds) of the demo videos; "expect" documents what the profile should do.
UPPER_DEMO = {
    "upper_person_b_a.mp4": ("person_b", 0.0, "keep"),
    "upper_person_b_b.mp4": ("person_b_alt", 0.7, "keep"),
    "upper_astronaut.mp4": ("astronaut", 0.0, "too_few_hand_frames"),
    "upper_head_only.mp4": ("astronaut_head", 0.0, "no_torso"),
    "upper_wide.mp4": ("person_b_wide", 0.0, "portrait_crop_outside_frame"),
}


# ----------------------------------------------------------------------------------------------- speech → motion


def speech_envelope(audio: np.ndarray, n_frames: int, fps: float = FPS, rate: int = AUDIO_RATE) -> np.ndarray:
    """(n_frames,) RMS of the speech under each video frame, smoothed over 3 frames, normalised to its 95th
    percentile and clipped to [0, 1]: the mouth-opening signal."""
    hop = rate / fps
    rms = np.zeros(n_frames)
    for i in range(n_frames):
        seg = audio[int(round(i * hop)): int(round((i + 1) * hop))]
        rms[i] = math.sqrt(float(np.mean(np.square(seg)))) if len(seg) else 0.0
    rms = np.convolve(np.pad(rms, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    ref = np.percentile(rms, 95)
    return np.clip(rms / ref, 0.0, 1.0) if ref > 0 else rms


def stressed_syllables(envelope: np.ndarray) -> np.ndarray:
    """Frame indices of stressed syllables: local maxima of the 5-frame-smoothed envelope above ``PEAK_LEVEL``,
    at least ``PEAK_MIN_GAP`` frames apart (the louder peak wins)."""
    smooth = np.convolve(np.pad(envelope, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    candidates = [i for i in range(1, len(smooth) - 1)
                  if smooth[i] >= smooth[i - 1] and smooth[i] > smooth[i + 1] and smooth[i] > PEAK_LEVEL]
    chosen: list[int] = []
    for i in sorted(candidates, key=lambda k: (-smooth[k], k)):
        if all(abs(i - j) >= PEAK_MIN_GAP for j in chosen):
            chosen.append(i)
    return np.array(sorted(chosen), dtype=np.int64)


def gesture_curve(peaks: np.ndarray, n_frames: int, half_width: int = GESTURE_HALF_WIDTH) -> np.ndarray:
    """(n_frames,) in [0, 1]: a raised-cosine bump centred on every stressed syllable."""
    t = np.arange(n_frames)[:, None]
    d = np.abs(t - np.asarray(peaks)[None, :]) / half_width
    bumps = np.where(d < 1, 0.5 * (1 + np.cos(np.pi * np.minimum(d, 1))), 0.0)
    return bumps.max(1) if len(peaks) else np.zeros(n_frames)


# ----------------------------------------------------------------------------------------------- rendering


def _still(portrait: UpperPortrait) -> np.ndarray:
    import cv2

    photo = load_photo("astronaut" if portrait.photo == "astronaut" else "person_b")
    if photo is None:
        raise MissingDependencyError("the upper-body demo needs insightface's t1.jpg; install it with: "
                                     "pip install --no-deps insightface")
    x0, y0, x1, y1 = portrait.region
    s = portrait.scale
    mat = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], np.float64)
    return cv2.warpAffine(photo, mat, portrait.frame, flags=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT_101)


def _gauss(v: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((v - centre) / sigma) ** 2)


def _fields(portrait: UpperPortrait, axes: tuple[np.ndarray, np.ndarray], motion: dict) -> tuple[np.ndarray, ...]:
    """Backward map (map_x, map_y) of one frame: out(p) = still(p − T − d(p)), T the torso translation and d the
    sum of the head, mouth and hand fields at p. Every weight is separable (a row profile × a column profile), so a
    frame costs a few broadcasts of 1-D vectors."""
    x, y = axes[0][None, :], axes[1][:, None]  # (1, W), (H, 1)
    face = portrait.face_size
    # Head: rotation about the neck (below the chin), weighted by a Gaussian around the face centre.
    fc = portrait.to_frame(((portrait.face[0] + portrait.face[2]) / 2, (portrait.face[1] + portrait.face[3]) / 2))
    pivot = portrait.to_frame(portrait.chin) + (0.0, 0.3 * face)
    a = math.radians(motion["head_roll"])
    w = _gauss(x, fc[0], 0.6 * face) * _gauss(y, fc[1], 0.6 * face)
    rx, ry = x - pivot[0], y - pivot[1]
    # image y points down: a counter-clockwise turn on screen (positive roll, as cv2) is this rotation
    dx = w * ((math.cos(a) - 1) * rx + math.sin(a) * ry)
    dy = w * (-math.sin(a) * rx + (math.cos(a) - 1) * ry)
    # Mouth: the lower lip and jaw drop by the opening; 0 above the upper lip, 1 from the lower lip to the chin.
    up, lo = portrait.to_frame(portrait.upper_lip), portrait.to_frame(portrait.lower_lip)
    chin = portrait.to_frame(portrait.chin)
    ramp = np.clip((y - up[1]) / max(lo[1] - up[1], 2.0), 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)
    below = np.where(y > chin[1], _gauss(y, chin[1], 0.15 * face), 1.0)
    dy = dy + motion["mouth_px"] * (ramp * below) * _gauss(x, (up[0] + lo[0]) / 2, 0.3 * face)
    # Hand: a Gaussian-weighted translation centred where the hand is now (so its content moves whole).
    if portrait.hand is not None and (motion["hand_dx"] or motion["hand_dy"]):
        hc = portrait.to_frame(portrait.hand) + (motion["hand_dx"], motion["hand_dy"])
        wh = _gauss(x, hc[0], 0.5 * face) * _gauss(y, hc[1], 0.5 * face)
        dx = dx + wh * motion["hand_dx"]
        dy = dy + wh * motion["hand_dy"]
    map_x = np.broadcast_to(x - motion["torso_dx"] - dx, (len(axes[1]), len(axes[0])))
    map_y = np.broadcast_to(y - motion["torso_dy"] - dy, (len(axes[1]), len(axes[0])))
    return map_x.astype(np.float32), map_y.astype(np.float32)


def motion_track(portrait: UpperPortrait, audio: np.ndarray, n_frames: int, t0: float = 0.0) -> dict[str, np.ndarray]:
    """The known motion of every frame (the ground truth saved beside each video)."""
    t = t0 + np.arange(n_frames) / FPS
    env = speech_envelope(audio, n_frames)
    peaks = stressed_syllables(env)
    gesture = gesture_curve(peaks, n_frames) if portrait.hand is not None else np.zeros(n_frames)
    face = portrait.face_size
    return {
        "t": t, "envelope": env, "peaks": peaks, "gesture": gesture,
        "mouth_px": MOUTH_GAIN * face * env,
        "head_roll": HEAD_ROLL * np.sin(2 * np.pi * t / 1.9),
        "torso_dx": TORSO_SWAY[0] * np.sin(2 * np.pi * t / 2.4),
        "torso_dy": TORSO_SWAY[1] * np.sin(2 * np.pi * t / 3.1),
        "hand_dx": -0.25 * HAND_LIFT * face * gesture,  # up and slightly inwards
        "hand_dy": -HAND_LIFT * face * gesture,
    }


def render_upper(name: str, seconds: float = 2.4, t0: float = 0.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """(frames (T, H, W, 3) uint8, audio float32 at 16 kHz, ground truth dict of (T,) arrays and static points)."""
    import cv2

    if name not in UPPER_PORTRAITS:
        raise ValueError(f"unknown portrait {name!r}; choose from {sorted(UPPER_PORTRAITS)}")
    portrait = UPPER_PORTRAITS[name]
    n = int(round(seconds * FPS))
    audio = speech(portrait.text, portrait.voice, seconds)
    motion = motion_track(portrait, audio, n, t0)
    still = _still(portrait)
    w, h = portrait.frame
    axes = (np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        mx, my = _fields(portrait, axes, {k: float(v[i]) for k, v in motion.items() if k != "peaks"})
        frames[i] = cv2.remap(still, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    truth = dict(motion)
    truth.update(face_size=np.float64(portrait.face_size), fps=np.float64(FPS),
                 face_centre=portrait.to_frame(((portrait.face[0] + portrait.face[2]) / 2,
                                                (portrait.face[1] + portrait.face[3]) / 2)),
                 hand_centre=portrait.to_frame(portrait.hand) if portrait.hand is not None else np.full(2, np.nan))
    return frames, audio, truth


def make_upper_demo(out_dir: str | Path, seconds: float = 2.4, names=None) -> Path:
    """Write the upper-body demo videos, one ``<video>.npz`` of ground truth beside each, ``expected.json`` and
    ``sources.csv``; returns the sources.csv path."""
    from .media import write_video

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = {k: v for k, v in UPPER_DEMO.items() if names is None or k in names}
    for file, (portrait, t0, _) in plan.items():
        frames, audio, truth = render_upper(portrait, seconds, t0)
        write_video(out / file, frames, FPS, audio=audio)
        stem = file.rsplit(".", 1)[0]
        tmp = out / f".{stem}.npz.tmp.npz"
        np.savez(tmp, **truth)
        tmp.replace(out / f"{stem}.npz")
    (out / "expected.json").write_text(json.dumps({f: {"portrait": p, "expect": e} for f, (p, _, e) in plan.items()},
                                                  indent=1, sort_keys=True))
    sources = out / "sources.csv"
    with open(sources, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["url", "start", "end", "identity"])
        for file, (portrait, _, _) in plan.items():
            writer.writerow([file, "", "", UPPER_PORTRAITS[portrait].photo])
    return sources


# ----------------------------------------------------------------------------------------------- bench clips

# The `demo run` upper-body clips: the same man, two utterances. Curation would give both one identity (so one split)
# and costs about a minute on two cores; these clips skip it: the 2:3 crop is the frame's known centre, and the
# split is per clip (the training clip says other words in another voice than the scored one).
# name → (split, phase offset s, seconds); the scored clip is short (17 frames: FVD's 16 after the source frame),
# because the CPU renderer costs about a second per frame on a shared 2-core machine.
UPPER_BENCH = {"person_b_alt": ("train", 0.7, 1.2), "person_b": ("test", 0.0, 0.68)}
BENCH_SIZE = (256, 384)  # (W, H): the tiny avatar preset's frames


def make_upper_bench_clips(out_dir: str | Path, seconds: dict[str, float] | None = None) -> list[dict]:
    """Write ``clips/<name>.mp4`` (2:3 crop of the rendered frame at ``BENCH_SIZE``, speech muxed) for each clip of
    ``UPPER_BENCH`` (``seconds`` overrides their lengths); returns their clips-manifest rows (the caller writes the
    table)."""
    import uuid

    from PIL import Image

    from .media import write_video

    out = Path(out_dir)
    rows = []
    for name, (split, t0, length) in UPPER_BENCH.items():
        length = (seconds or {}).get(name, length)
        frames, audio, truth = render_upper(name, length, t0)
        h, w = frames.shape[1:3]
        cw = int(round(h * 2 / 3))
        x0 = (w - cw) // 2
        small = np.stack([np.asarray(Image.fromarray(f[:, x0:x0 + cw]).resize(BENCH_SIZE, Image.BICUBIC))
                          for f in frames])
        rel = f"clips/{name}.mp4"
        write_video(out / rel, small, FPS, audio=audio)
        tmp = out / "clips" / f".{name}.npz.tmp.npz"
        np.savez(tmp, **truth)  # the known motion (in the rendered frame's pixels), as make_upper_demo keeps it
        tmp.replace(out / "clips" / f"{name}.npz")
        rows.append({"clip_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"talkbench-demo-upper/{name}/{length}")),
                     "source_id": name, "identity_id": "t1-person_b", "source_label": name, "start_s": 0.0,
                     "end_s": len(small) / FPS, "fps": float(FPS), "n_frames": len(small), "crop_x0": x0,
                     "crop_y0": 0, "crop_size": cw, "crop_height": h, "crop_padded": False, "path": rel,
                     "size": BENCH_SIZE[0], "height": BENCH_SIZE[1], "has_audio": True, "split": split,
                     "detector_backend": "none (demo: known crop)"})
    return rows
