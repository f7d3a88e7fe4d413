"""Shared fixtures: a fresh weights home per test, random official-format files written once per session."""

from __future__ import annotations

import numpy as np
import pytest

from talkbench import weights
from talkbench.metrics import random_weights


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty TALKBENCH_HOME for one test."""
    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "tbhome"))
    return tmp_path / "tbhome"


@pytest.fixture(scope="session")
def fake_files(shared_once):
    """name -> path of a random-weight file in that entry's official container (written once per test run)."""
    def build(folder):
        for name, entry in weights.all_entries().items():
            random_weights.write_random(name, folder / entry.filename)

    folder = shared_once("fake-weights", build)
    return {name: folder / entry.filename for name, entry in weights.all_entries().items()}


@pytest.fixture(scope="session")
def face_frames():
    """A real portrait (skimage astronaut), face-centred and resized to 128x128, as 8 slightly moving frames."""
    from PIL import Image
    from skimage import data

    face = np.asarray(Image.fromarray(data.astronaut()[0:300, 80:380]).resize((128, 128), Image.BICUBIC))
    return np.stack([np.roll(face, (i % 3) - 1, axis=1) for i in range(8)])
