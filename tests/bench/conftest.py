"""Real-material clip manifests for the bench tests (Megamind.avi segments, an astronaut portrait with espeak-ng
speech), scored by the real talkbench.metrics Evaluator under the real talkbench-v1-256 protocol.

Every bench test starts from an empty weights home: metrics whose networks are not installed come back null with
the install command. Tests that need set-level values install random-weight files in the official formats
(talkbench.metrics.random_weights) into their own home; those values check plumbing, not accuracy.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

MEGAMIND = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
PROTO = "talkbench-v1-256"  # the smallest registered protocol: frames are scored at 256 px


@pytest.fixture(scope="session")
def empty_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-home-empty")


@pytest.fixture(autouse=True)
def _empty_weights_home(empty_home, monkeypatch):
    """No weights unless a test installs some in its own home (monkeypatch TALKBENCH_HOME again)."""
    monkeypatch.setenv("TALKBENCH_HOME", str(empty_home))


def install_random_weights(home: Path, names: list[str], seed: int = 0) -> dict[str, dict]:
    """Random files in the official formats installed as a user would import them (``--unverified`` where the
    entry pins a hash); returns each entry's install record."""
    import os

    from talkbench import weights
    from talkbench.metrics import random_weights

    home.mkdir(parents=True, exist_ok=True)
    old = os.environ.get("TALKBENCH_HOME")
    os.environ["TALKBENCH_HOME"] = str(home)
    try:
        records = {}
        for name in names:
            src = random_weights.write_random(name, home / f"random-{weights.get_entry(name).filename}", seed)
            records[name] = weights.install_file(name, src, unverified=True, source="random (random_weights)")
            src.unlink()
        return records
    finally:
        if old is None:
            os.environ.pop("TALKBENCH_HOME")
        else:
            os.environ["TALKBENCH_HOME"] = old


def speech(path: Path, text: str) -> Path:
    subprocess.run(["espeak-ng", "-s", "170", "-w", str(path), text], check=True, capture_output=True)
    return path


def astronaut_clip(n: int, shift: int, size: int = 96) -> np.ndarray:
    """A real portrait with a known head motion: a square window sliding and zooming over skimage's astronaut."""
    import cv2
    from skimage.data import astronaut

    img = astronaut()  # 512x512, face near (x 170-300, y 40-200)
    frames = []
    for t in range(n):
        s = 260 + int(12 * np.sin(t / 4))
        x0 = 110 + shift + int(10 * np.sin(t / 3))
        y0 = 8 + int(6 * np.cos(t / 5))
        frames.append(cv2.resize(img[y0:y0 + s, x0:x0 + s], (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(frames)


def megamind_clip(start: float, n: int, size: int = 96) -> np.ndarray:
    from talkbench.media import read_frames

    return read_frames(MEGAMIND, fps=25, crop=(110, 30, 380, 380), size=size, start=start, duration=n / 25 + 0.2)[:n]


def build_manifest(root: Path, n: int = 20) -> Path:
    """5 clips: 2 Megamind + 2 astronaut in the test split, 1 astronaut in train; all with real audio."""
    from talkbench.manifests import write_table
    from talkbench.media import read_audio, write_video

    root.mkdir(parents=True, exist_ok=True)
    wav = speech(root / "speech.wav", "Hello, this is a short test of talking head benchmarks.")
    voice = read_audio(wav, 16000)
    mm_audio = read_audio(MEGAMIND, 16000)
    specs = [
        ("c-mm-0", "megamind", megamind_clip(0.5, n), mm_audio[8000:], "test"),
        ("c-mm-1", "megamind", megamind_clip(4.0, n), mm_audio[64000:], "test"),
        ("c-as-0", "astronaut", astronaut_clip(n, 0), voice, "test"),
        ("c-as-1", "astronaut", astronaut_clip(n, 20), voice[4000:], "test"),
        ("c-as-2", "astronaut", astronaut_clip(n, 40), voice[8000:], "train"),
    ]
    rows = []
    for cid, ident, frames, audio, split in specs:
        rel = f"clips/{cid}.mp4"
        write_video(root / rel, frames, 25.0, audio=audio[: int(n / 25 * 16000)], audio_rate=16000)
        rows.append({"clip_id": cid, "source_id": f"src-{ident}", "identity_id": ident, "path": rel, "split": split,
                     "n_frames": n, "fps": 25.0, "has_audio": True, "size": frames.shape[1]})
    write_table(rows, root / "clips.parquet", "clips")
    return root / "clips.parquet"


@pytest.fixture(scope="session")
def clip_manifest(tmp_path_factory) -> Path:
    return build_manifest(tmp_path_factory.mktemp("bench_clips"))
