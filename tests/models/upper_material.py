"""Upper-body test material with known motion, tied to real espeak-ng speech (shared by the avatar model tests).

Per clip: expression[0] opens with the speech envelope, the other coefficients oscillate; the head pose has a
per-clip offset (how the speaker holds the head: the "style") and a per-clip amplitude; the body follows the head
(shoulders shift with the head's yaw and tx, lean with its pitch) and a hand lifts on loud syllables. Frames come
from skimage's astronaut photo (a real portrait) warped by the same motion, at 2:3.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

TEXTS = (
    "Talking heads need good lip sync. The quick brown fox jumps over the lazy dog, and then it runs away.",
    "A speech driven model must open the mouth when the voice is loud and close it in the pauses between words.",
    "Seven silver swans swam silently seaward. Pack my box with five dozen liquor jugs, please.",
    "We measure how the motion follows the envelope of the speech, frame by frame, at twenty five frames a second.",
)
HELD_OUT = "Held out speech tells us whether the model learned the relationship, or only memorised the clips."
FPS, RATE = 25, 16000
BODY_KP = 9  # nose, shoulders, elbows, wrists, hips (a MediaPipe-pose upper-body subset)
BODY_TEMPLATE = np.array([[0.0, -0.55], [-0.35, -0.15], [0.35, -0.15], [-0.5, 0.3], [0.5, 0.3], [-0.45, 0.7],
                          [0.45, 0.7], [-0.25, 0.85], [0.25, 0.85]], np.float32)  # (x, y) in [-1, 1], 2:3 frame


def espeak(text: str, folder, voice: str = "en") -> np.ndarray:
    from talkbench.media import read_audio

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is needed for real speech (apt-get install espeak-ng)")
    wav = folder / f"{abs(hash((text, voice)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
    return read_audio(wav, RATE)


def envelope(audio: np.ndarray, n: int) -> np.ndarray:
    """(n,) RMS per video frame, scaled to [0, 1]."""
    hop = RATE // FPS
    a = np.pad(audio, (0, max(0, n * hop - len(audio))))[: n * hop].reshape(n, hop)
    env = np.sqrt((a.astype(np.float64) ** 2).mean(1))
    return (env / max(env.max(), 1e-8)).astype(np.float32)


def face_motion(env: np.ndarray, expr_dim: int, amp: float, offset: tuple[float, float], seed: int) -> np.ndarray:
    """(T, E + 6): expression then pose6 (yaw, pitch, roll, tx, ty, scale)."""
    rng = np.random.default_rng(seed)
    t = np.arange(len(env), dtype=np.float32)
    expr = np.zeros((len(env), expr_dim), np.float32)
    expr[:, 0] = amp * env
    for k in range(1, expr_dim):
        expr[:, k] = amp * 0.3 * np.sin(2 * np.pi * t / rng.uniform(15, 60) + rng.uniform(0, 6.3))
    pose = np.zeros((len(env), 6), np.float32)
    pose[:, 0] = offset[0] + amp * 0.15 * np.sin(2 * np.pi * t / rng.uniform(30, 70) + rng.uniform(0, 6.3))
    pose[:, 1] = offset[1] + amp * 0.1 * np.sin(2 * np.pi * t / rng.uniform(20, 50) + rng.uniform(0, 6.3))
    pose[:, 2] = amp * 0.05 * np.sin(2 * np.pi * t / rng.uniform(30, 80) + rng.uniform(0, 6.3))
    pose[:, 3] = 0.5 * pose[:, 0] + amp * 0.02 * np.sin(t / 9)
    pose[:, 4] = 0.3 * pose[:, 1]
    pose[:, 5] = 1.0
    return np.concatenate([expr, pose], 1)


def body_from_face(motion: np.ndarray, expr_dim: int, env: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body (T, 9, 2) following the head, hands (T, 2, 21, 2) with the right hand lifting on loud frames."""
    pose = motion[:, expr_dim:]
    n = len(motion)
    body = np.repeat(BODY_TEMPLATE[None], n, 0).copy()
    body[:, :, 0] += 0.4 * pose[:, 3:4] + 0.1 * pose[:, 0:1]
    body[:, :5, 1] += 0.15 * pose[:, 1:2]
    lift = np.clip(env - 0.3, 0, None)[:, None] * 0.6
    body[:, 6, 1] -= lift[:, 0]
    hands = np.zeros((n, 2, 21, 2), np.float32)
    fan = np.stack([np.repeat(np.linspace(-0.06, 0.06, 5), 4), np.tile(np.linspace(-0.03, -0.12, 4), 5)], 1)
    for side, wrist in ((0, 5), (1, 6)):
        hands[:, side, 0] = body[:, wrist]
        hands[:, side, 1:] = body[:, wrist, None] + fan[None].astype(np.float32)
    return body.astype(np.float32), hands


def clip(audio: np.ndarray, expr_dim: int, amp: float, offset=(0.0, 0.0), seed: int = 0) -> dict:
    """One clip's per-frame targets and audio (frames are drawn separately: ``frames``)."""
    from talkbench.models.audio_features import MFCC_PER_FRAME, mfcc_features

    mfcc = mfcc_features(audio)
    n = len(mfcc) // MFCC_PER_FRAME
    env = envelope(audio, n)
    motion = face_motion(env, expr_dim, amp, offset, seed)
    body, hands = body_from_face(motion, expr_dim, env)
    return {"audio": audio, "mfcc": mfcc[: n * MFCC_PER_FRAME], "motion": motion, "env": env, "body": body,
            "hands": hands, "n": n}


def portrait(height: int = 96, width: int = 64) -> np.ndarray:
    """skimage's astronaut cropped to 2:3 (head, shoulders) and resized: (H, W, 3) uint8."""
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut()).crop((100, 0, 100 + 300, 450))
    return np.asarray(img.resize((width, height), Image.BICUBIC))


def draw_hand(frame: np.ndarray, hand: np.ndarray, colour=(230, 180, 150), width: int = 3) -> np.ndarray:
    """Draw a 21-joint hand (normalised [-1, 1] (x, y)) as a filled skin-coloured skeleton (a visible hand)."""
    import cv2

    from talkbench.models.kp_renderer import HAND_BONES

    h, w = frame.shape[:2]
    pts = ((hand + 1) / 2 * np.array([w, h])).astype(np.int32)
    out = frame.copy()
    for a, b in HAND_BONES:
        cv2.line(out, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]), colour, width)
    cv2.circle(out, tuple(int(v) for v in pts[0]), width + 1, colour, -1)
    return out


def frames(src: np.ndarray, body: np.ndarray, hands: np.ndarray) -> np.ndarray:
    """(T, H, W, 3): the portrait shifted with the shoulders' mid-point, and the right hand drawn."""
    import cv2

    h, w = src.shape[:2]
    out = []
    for t in range(len(body)):
        dx = (body[t, 1:3, 0].mean() - BODY_TEMPLATE[1:3, 0].mean()) * w / 2
        dy = (body[t, 1:3, 1].mean() - BODY_TEMPLATE[1:3, 1].mean()) * h / 2
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        f = cv2.warpAffine(src, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        out.append(draw_hand(f, hands[t, 1]))
    return np.stack(out)
