"""The trained renderer reenacts better than doing nothing: on held-out identities of the demo's moving heads, the tiny
stage-1 model trained on CPU beats `static` (the source frame repeated) on PSNR and on the AKD of the face mesh.

The material is the demo's: real portraits (insightface's t1.jpg people for training, skimage's astronaut held out)
moved by the demo's known head motions (sway, zoom, nod), rendered as `demo make` renders them and cut to the square
crop a curated clip has (face box ~110 px in 256 px), so the test needs no curation run. The scoring is the bench's: frame 0 is the source
and is not scored; PSNR from metrics.pixel, AKD from metrics.motion on MediaPipe Face Mesh landmarks, at 256 px.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkbench import demo, media
from talkbench.manifests import write_table
from talkbench.faces.detect import mesh_landmarks
from talkbench.metrics.motion import akd
from talkbench.metrics.pixel import psnr_frames
from talkbench.models.inference import ReenactModel
from talkbench.models.train_motion import LossWeights, TrainConfig, main

SIZE = 256  # the talkbench-v1-256 protocol's frame size
CROP = 700  # side of the square around the face: the face box (300 px) is ~110 px at 256 px
SECONDS = 2.0
TRAIN = [("person_b", "sway"), ("person_b", "zoom"), ("person_c", "sway"), ("person_c", "nod")]
TEST = [("astronaut", "sway"), ("astronaut", "zoom"), ("astronaut", "nod")]

# Measured on the 2-core CPU box (tiny preset, batch 4, seed 0, one thread, pixel-pyramid loss, GAN term off), on
# the three held-out astronaut clips (PSNR dB ↑ / AKD px ↓; static 18.08 / 4.696):
#    60 steps: ours 18.08 / 4.794 (lr 2e-3), 18.16 / 4.758 (lr 1e-3): not yet better on AKD;
#   150 steps: ours 18.40 / 4.590, i.e. +0.31 dB and -0.106 px (lr 5e-3 diverged before 150 steps).
# The asserted margins are half the measured ones. Before the identity-warp init (random flows, the renderer drawing
# the image from features) 200 steps on the curated demo gave AKD 7.22 against static's 5.58.
STEPS = 150
PSNR_MARGIN = 0.15
AKD_MARGIN = 0.05


def clip(name: str, kind: str) -> np.ndarray:
    if demo.load_photo(name) is None:
        pytest.skip("insightface's t1.jpg is not installed")
    import cv2

    # rendered straight onto the CROP × CROP square around the face: the same pixels as the centred crop of a larger
    # frame (the portrait is warped from the photo; the canvas only sets where the output stops)
    frames = demo.render_portrait(name, kind, SECONDS, size=(CROP, CROP))[0]
    return np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames])


def scores(videos: np.ndarray, truths: np.ndarray) -> tuple[float, float]:
    """Mean PSNR and AKD over clips (each (T, H, W, 3), frame 0 not scored)."""
    psnr, dist = [], []
    for pred, gt in zip(videos, truths):
        psnr.append(float(psnr_frames(torch.from_numpy(pred[1:]), torch.from_numpy(gt[1:])).mean()))
        value, used = akd(mesh_landmarks(pred[1:]), mesh_landmarks(gt[1:]))
        assert used >= len(gt) - 3, "the face mesh must find the face in (nearly) every frame"
        dist.append(value)
    return float(np.mean(psnr)), float(np.mean(dist))


@pytest.mark.slow
def test_trained_renderer_beats_static_on_held_out_identities(tmp_path):
    rows = []
    for name, kind in TRAIN:
        rel = f"clips/{name}-{kind}.mp4"
        media.write_video(tmp_path / rel, clip(name, kind), fps=demo.FPS, crf=12)
        rows.append({"clip_id": f"{name}-{kind}", "source_id": f"{name}-{kind}", "identity_id": name, "path": rel,
                     "n_frames": int(SECONDS * demo.FPS), "fps": demo.FPS, "size": SIZE, "split": "train",
                     "has_audio": False})
    write_table(rows, tmp_path / "clips.parquet", "clips")
    torch.manual_seed(0)
    result = main(TrainConfig(manifest=str(tmp_path / "clips.parquet"), out=str(tmp_path / "run"), preset="tiny",
                              max_steps=STEPS, batch_size=4, device="cpu", perceptual="none-l1-pyramid",
                              num_workers=0, log_every=10, image_every=10_000, ckpt_every=10_000,
                              weights=LossWeights(gan=0.0)))  # measured: the GAN term slows short CPU runs

    truths = [clip(name, kind) for name, kind in TEST]  # identities the model never saw
    model = ReenactModel.from_checkpoint(result["checkpoint"])
    ours = [np.stack(list(model.reenact(gt[0], gt, batch_size=25))) for gt in truths]
    static = [np.repeat(gt[:1], len(gt), 0) for gt in truths]
    ours_psnr, ours_akd = scores(ours, truths)
    static_psnr, static_akd = scores(static, truths)
    assert ours_psnr > static_psnr + PSNR_MARGIN, (ours_psnr, static_psnr)
    assert ours_akd < static_akd - AKD_MARGIN, (ours_akd, static_akd)


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
