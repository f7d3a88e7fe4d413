"""The trained renderer reenacts better than doing nothing: on held-out identities of the demo's moving heads, the tiny
stage-1 model trained on CPU beats `static` (the source frame repeated) on PSNR and on the AKD of the face mesh.

The material and the training are scripts/train_renderer_fixture.py's: real portraits (insightface's t1.jpg people for
training, skimage's astronaut held out) moved by the demo's known head motions (sway, zoom, nod), cut to the square
crop a curated clip has (face box ~110 px in 256 px), so the test needs no curation run. The scoring is the bench's:
frame 0 is the source and is not scored; PSNR from metrics.pixel, AKD from metrics.motion on MediaPipe Face Mesh
landmarks, at 256 px.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from talkbench import demo
from talkbench.faces.detect import mesh_landmarks
from talkbench.metrics.motion import akd
from talkbench.metrics.pixel import psnr_frames
from talkbench.models.inference import ReenactModel

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "beats_static"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_renderer_fixture.py"
_spec = importlib.util.spec_from_file_location("train_renderer_fixture", SCRIPT)
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)

# Measured on the 2-core CPU box (the script's recipe: tiny preset, batch 4, seed 0, one thread, pixel-pyramid loss,
# GAN term off), on the three held-out astronaut clips (PSNR dB ↑ / AKD px ↓; static 18.08 / 4.696):
#    60 steps: ours 18.08 / 4.794 (lr 2e-3), 18.16 / 4.758 (lr 1e-3): not yet better on AKD;
#   150 steps: ours 18.40 / 4.590, i.e. +0.31 dB and -0.106 px (lr 5e-3 diverged before 150 steps).
# The committed checkpoint (the same recipe, 150 steps): ours 18.36 / 4.610 against static 18.08 / 4.695, i.e.
# +0.28 dB and -0.085 px. The asserted margins are about half the measured ones. Before the identity-warp init (random flows, the renderer drawing
# the image from features) 200 steps on the curated demo gave AKD 7.22 against static's 5.58. The 150 steps (about
# a minute) ran inside this test until session 5; the committed checkpoint (tests/data/beats_static, made by the
# script) keeps CI under its time, and TALKBENCH_RUN_SLOW=1 re-trains.
PSNR_MARGIN = 0.15
AKD_MARGIN = 0.05


def clip(name: str, kind: str) -> np.ndarray:
    if demo.load_photo(name) is None:
        pytest.skip("insightface's t1.jpg is not installed")
    return fixture.clip(name, kind)


def scores(videos: np.ndarray, truths: np.ndarray) -> tuple[float, float]:
    """Mean PSNR and AKD over clips (each (T, H, W, 3), frame 0 not scored)."""
    psnr, dist = [], []
    for pred, gt in zip(videos, truths):
        psnr.append(float(psnr_frames(torch.from_numpy(pred[1:]), torch.from_numpy(gt[1:])).mean()))
        value, used = akd(mesh_landmarks(pred[1:]), mesh_landmarks(gt[1:]))
        assert used >= len(gt) - 3, "the face mesh must find the face in (nearly) every frame"
        dist.append(value)
    return float(np.mean(psnr)), float(np.mean(dist))


def check_beats_static(checkpoint: Path) -> None:
    truths = [clip(name, kind) for name, kind in fixture.TEST]  # identities the model never saw
    model = ReenactModel.from_checkpoint(checkpoint)
    ours = [np.stack(list(model.reenact(gt[0], gt, batch_size=25))) for gt in truths]
    static = [np.repeat(gt[:1], len(gt), 0) for gt in truths]
    ours_psnr, ours_akd = scores(ours, truths)
    static_psnr, static_akd = scores(static, truths)
    print(f"held out: ours {ours_psnr:.2f} dB / {ours_akd:.3f} px, static {static_psnr:.2f} dB / {static_akd:.3f} px")
    assert ours_psnr > static_psnr + PSNR_MARGIN, (ours_psnr, static_psnr)
    assert ours_akd < static_akd - AKD_MARGIN, (ours_akd, static_akd)


def test_trained_renderer_beats_static_on_held_out_identities():
    """The committed checkpoint is the one recipe.json describes, trained on the train identities only, and it beats
    `static` on the held-out ones."""
    from talkbench.media import sha256_file

    record = json.loads((FIXTURE / "recipe.json").read_text())
    assert sha256_file(FIXTURE / "stage1.pt") == record["stage1_sha256"]
    assert record["recipe"] == fixture.RECIPE
    assert not {name for name, _ in record["train"]} & {name for name, _ in fixture.TEST}
    check_beats_static(FIXTURE / "stage1.pt")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TALKBENCH_RUN_SLOW"),
                    reason="re-trains the renderer (about a minute on 2 cores); TALKBENCH_RUN_SLOW=1 runs it")
def test_retrained_renderer_beats_static_on_held_out_identities(tmp_path):
    if any(demo.load_photo(name) is None for name, _ in fixture.TRAIN):
        pytest.skip("insightface's t1.jpg is not installed")
    fixture.build(tmp_path / "out", tmp_path / "work")
    check_beats_static(tmp_path / "out" / "stage1.pt")


def test_untrained_renderer_copies_the_source_at_full_size():
    """The init is `static`: zero flows and a zero residual give back the source frame, at the source's own size
    (256 px here, not the 64 px the tiny model runs at), whatever the driver does."""
    from talkbench.models.motion import PRESETS, MotionGenerator

    torch.manual_seed(0)
    frames = clip("astronaut", "zoom")[:12]
    out = np.stack(list(ReenactModel(MotionGenerator(PRESETS["tiny"])).reenact(frames[0], frames, batch_size=5)))
    assert out.shape == frames.shape
    assert np.abs(out.astype(int) - frames[0].astype(int)).max() <= 1
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 5  # the driver does move
