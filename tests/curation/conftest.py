"""Shared fixtures of the scene/face/filter tests: real media, generated once per session, kept short."""

from __future__ import annotations

from pathlib import Path

import pytest

from talkbench.curation.config import CurationConfig
from talkbench.runtime import StepContext

MEGAMIND = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def run_steps(steps, rows):
    """Run steps in sequence like an executor rank does; returns (rows out, every rejection)."""
    rejections = []
    for step in steps:
        step.ctx = StepContext(step.name)
        rows = list(step.run(rows))
        rejections += step.ctx.rejections
    return rows, rejections


@pytest.fixture(scope="session")
def curation_config() -> CurationConfig:
    return CurationConfig()


@pytest.fixture(scope="session")
def face_media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("curation-media")


@pytest.fixture(scope="session")
def make_face_video(face_media_dir):
    """make_video(name, frames, audio=True) → path; written once per session under face_media_dir."""
    from talkbench.demo import speech
    from talkbench.media import write_video

    cache: dict[str, Path] = {}
    voice = {}

    def make(name: str, frames_fn, audio: bool = True, fps: float = 25.0) -> Path:
        if name not in cache:
            frames = frames_fn()
            track = None
            if audio:
                if "v" not in voice:
                    voice["v"] = speech("Testing one two three, the face curation stage.", "en-us", 8.0)
                track = voice["v"][: int(len(frames) / fps * 16000)]
            cache[name] = write_video(face_media_dir / name, frames, fps, audio=track)
        return cache[name]

    return make


@pytest.fixture(scope="session")
def megamind_candidates(curation_config):
    """Scene + face steps over the whole of Megamind.avi (real, 720×528, 23.976 fps, 11 s)."""
    from talkbench.curation.faces import FaceStep
    from talkbench.curation.scenes import SceneStep, segment_row

    if not MEGAMIND.exists():
        pytest.skip("opencv-doc's Megamind.avi is not installed (apt-get install opencv-doc)")
    seg = segment_row(MEGAMIND, "megamind")
    shots, shot_rejections = run_steps([SceneStep(curation_config)], [seg])
    candidates, face_rejections = run_steps([FaceStep(curation_config)], shots)
    return {"segment": seg, "shots": shots, "shot_rejections": shot_rejections, "candidates": candidates,
            "face_rejections": face_rejections}


@pytest.fixture(scope="session")
def steps_runner():
    """The ``run_steps(steps, rows) -> (rows, rejections)`` helper, as a fixture (conftest is not importable)."""
    return run_steps
