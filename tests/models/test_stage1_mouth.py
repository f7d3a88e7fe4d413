"""Stage-1 pieces for speech-driven mouths: the standardised motion code, the mouth-region loss window (from the shared
face module's landmarks) and the one full-size render path of speech-driven and directed generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkbench import demo
from talkbench.models.inference import ReenactModel, frames_to_tensor
from talkbench.models.motion import PRESETS, MotionGenerator

SIZE = 256
CROP = 700  # the centred square crop test_beats_static uses: the face box is ~110 px at 256 px


def talking_astronaut(n: int = 8) -> np.ndarray:
    """(n, 256, 256, 3): the demo's astronaut swaying, the jaw opening from closed to fully open."""
    import cv2

    frames = demo.render_portrait("astronaut", "sway", n / demo.FPS, size=(CROP, CROP), opening=np.linspace(0, 1, n))[0]
    return np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames])


def test_tiny_mouth_motion_code_is_standardised_and_others_are_not():
    """Training sees the motion code standardised per dimension (without the norm the raw code of these frames
    spreads by ~1 % of its size, so the renderer's styles cannot tell the frames apart; BatchNorm's eps 1e-5 is of
    the order of that raw variance, so the spread reaches 0.05-0.7 rather than 1); inference uses the running
    statistics, so one frame's code does not depend on the batch it is encoded in."""
    torch.manual_seed(0)
    frames = frames_to_tensor(talking_astronaut(), 64, torch.device("cpu"))
    gen = MotionGenerator(PRESETS["tiny-mouth"]).train()
    raw = gen.encoder.motion_fc(gen.encoder(frames).motion).detach()
    assert raw.std(0).mean() < 0.05 * raw.abs().mean()  # the problem the norm solves
    alpha = gen.encoder(frames).alpha.detach()
    assert torch.allclose(alpha.mean(0), torch.zeros(20), atol=1e-4)
    spread = alpha.std(0, unbiased=False)
    assert (spread > 10 * raw.std(0, unbiased=False)).all() and (spread <= 1).all()
    gen.eval()
    with torch.no_grad():
        one = gen.encoder(frames[:1]).alpha
        batch = gen.encoder(frames).alpha
    assert torch.allclose(one[0], batch[0], atol=1e-5)
    for plain in ("base", "tiny"):
        assert isinstance(MotionGenerator(PRESETS[plain]).encoder.motion_norm, torch.nn.Identity)


def test_mouth_window_sits_on_the_lips(tmp_path):
    """The mouth track of a curated-style clip (Face Mesh inner-lip midpoint) puts the loss window on the lips: its
    peak is within a pixel of the landmark at the model's 64 px, and the loss counts a change at the mouth far more
    than the same change on the forehead."""
    from talkbench import media
    from talkbench.faces.detect import mesh_landmarks
    from talkbench.faces.points import MESH_LOWER_LIP, MESH_UPPER_LIP
    from talkbench.models.data import mouth_track
    from talkbench.models.train_motion import mouth_l1, mouth_window

    frames = talking_astronaut()
    media.write_video(tmp_path / "clip.mp4", frames, fps=demo.FPS, crf=12)
    track = mouth_track({"clip_id": "astro", "path": "clip.mp4"}, tmp_path)
    assert track.shape == (len(frames), 3)
    lips = mesh_landmarks(frames[-1:])[0, [MESH_UPPER_LIP, MESH_LOWER_LIP], :2].mean(0) / SIZE  # (x, y) fraction
    win = mouth_window(torch.from_numpy(track[-1:]), 64)[0, 0]
    peak = np.unravel_index(int(win.argmax()), win.shape)  # (row, col)
    assert abs(peak[1] + 0.5 - lips[0] * 64) <= 1.0 and abs(peak[0] + 0.5 - lips[1] * 64) <= 1.0
    target = torch.zeros(1, 3, 64, 64)
    mouth_change, brow_change = target.clone(), target.clone()
    cy, cx = peak
    mouth_change[..., cy - 2:cy + 2, cx - 2:cx + 2] = 1.0
    brow_change[..., 4:8, cx - 2:cx + 2] = 1.0
    m = torch.from_numpy(track[-1:])
    assert mouth_l1(target, target, m) == 0
    assert mouth_l1(mouth_change, target, m) > 20 * mouth_l1(brow_change, target, m)


def test_speech_rendering_is_the_reenactment_path_at_full_size():
    """Speech-driven and directed frames come from the same full-size warp as reenactment: with non-zero flows, the
    portrait's own motion code renders exactly what reenacting the portrait by itself renders, at 256 px; an untrained
    renderer gives back the 256 px portrait itself (the old path upscaled a 64 px image: ~10 levels off)."""
    from talkbench.models.speech import PortraitRenderer

    torch.manual_seed(0)
    portrait = talking_astronaut(2)[0]
    untrained = ReenactModel(MotionGenerator(PRESETS["tiny"]))
    drawn = PortraitRenderer(untrained, portrait)
    out = drawn.render(drawn.source.alpha.expand(3, -1))
    assert out.shape == (3, SIZE, SIZE, 3)
    assert np.abs(out.astype(int) - portrait.astype(int)).max() <= 1

    gen = MotionGenerator(PRESETS["tiny"])
    with torch.no_grad():
        for to_flow in gen.synthesis.to_flows:
            to_flow.conv.weight.normal_(0, 0.3)
    model = ReenactModel(gen)
    drawn = PortraitRenderer(model, portrait)
    ours = drawn.render(drawn.source.alpha)[0]
    reenacted = next(iter(model.reenact(portrait, [portrait])))
    assert np.abs(ours.astype(int) - portrait.astype(int)).mean() > 1  # the flows do move pixels
    assert np.abs(ours.astype(int) - reenacted.astype(int)).max() <= 1


@pytest.mark.parametrize("device", ["meta"])
def test_motion_norm_buffers_follow_the_device(device):
    gen = MotionGenerator(PRESETS["tiny-mouth"]).to(device)
    assert {b.device.type for b in gen.encoder.motion_norm.buffers()} == {device}


def test_mouth_loss_trains_without_identity_terms(tiny_manifest, tmp_path):
    """The talking recipe's stage 1 runs: mouth-region L1 on, identity terms off (other/augmented images are not
    encoded), half the pairs near in time; the mouth term is logged and the identity terms stay at 0."""
    from talkbench.manifests import read_rows, write_table
    from talkbench.models.train_motion import LossWeights, TrainConfig, main

    manifest = tiny_manifest.parent / "astro-only.parquet"
    write_table([r for r in read_rows(tiny_manifest, "clips") if r["clip_id"] == "astro-a"], manifest, "clips")
    torch.manual_seed(0)
    result = main(TrainConfig(manifest=str(manifest), out=str(tmp_path / "run"), preset="tiny-mouth", max_steps=6,
                              batch_size=4, device="cpu", perceptual="none-l1-pyramid", num_workers=0, log_every=1,
                              image_every=10 ** 6, ckpt_every=10 ** 6, near_pairs=0.5,
                              weights=LossWeights(gan=0.0, aam=0.0, triplet=0.0, club=0.0, mouth=30.0)))
    rows = result["history"]
    assert len(rows) == 6 and all(r["aam"] == 0 and r["club"] == 0 for r in rows)
    assert rows[0]["mouth"] > 0 and (tmp_path / "run" / "last.pt").is_file()
