"""Speech-driven ``ours`` learns the demo's audio→mouth relationship, end to end on the curated talking demo.

The demo portraits open their jaw with the espeak-ng speech envelope (``talkbench.demo.open_mouth``). Tiny stage-1 and
stage-2 models are trained on the curated train split (person_b, person_c) with the commands a user types; on the
held-out identity (the astronaut) the mouth opening of the video ``ours`` generates — the inner-lip gap over the
inter-ocular distance from the shared face module — must follow the speech envelope: clearly better than ``static``
(a constant mouth: correlation 0 by definition) and than ``ours`` driven by the same speech time-reversed.
"""

from __future__ import annotations

import numpy as np
import pytest

MOTION_STEPS, MOTION_BATCH, A2M_STEPS, WINDOW, DDIM_STEPS = 20, 4, 150, 50, 20  # the `demo run` recipe


# What "clearly above" means here: ours must reach a correlation of 0.3 with the envelope and beat static (0) and
# ours-on-reversed-speech by 0.2. NOT YET MET. Measured on the `demo run` models (this recipe, CPU, 2026-11-28), per
# held-out clip (hard_cut, astronaut_zoom, astronaut_sway): ground-truth clip 0.883 / 0.908 / 0.899 (the material
# carries the signal, and Face Mesh finds it at 256 px); ours 0.063 / −0.060 / −0.031; ours on reversed speech
# 0.116 / −0.014 / 0.058; static 0. The 20-step stage 1 renders a blurred face whose mouth does not move.
MIN_CORR, MIN_GAP = 0.3, 0.2
NOT_MET = ("not reached: the demo recipe's 20 CPU steps of tiny stage 1 render no mouth motion (measured ours −0.01, "
           "reversed 0.05, static 0, ground truth 0.90); needs the stage-1 renderer work of issue 10")


def mouth_envelope_corr(frames: np.ndarray, envelope: np.ndarray) -> float:
    """Pearson correlation of the lip gap (÷ inter-ocular, Face Mesh) of ``frames`` with ``envelope``; a mouth that
    never moves (static) has no correlation: 0. Frames without a face are left out."""
    from talkbench.faces.detect import mesh_landmarks
    from talkbench.faces.points import lip_gap

    gap = lip_gap(mesh_landmarks(frames))
    k = min(len(gap), len(envelope))
    gap, env = gap[:k], envelope[:k]
    ok = ~np.isnan(gap)
    assert ok.mean() > 0.9, f"face found in only {ok.mean():.0%} of the generated frames"
    if np.std(gap[ok]) < 1e-9:
        return 0.0
    return float(np.corrcoef(gap[ok], env[ok])[0, 1])


@pytest.fixture(scope="module")
def trained(demo_curated, tmp_path_factory):
    """Tiny stage 1 + stage 2 trained on the demo's train split (the `demo run` recipe); latents and targets are
    written outside the fixture. Frames are generated at the portrait's size (256 px: the renderer's 64 px output
    upsampled), where MediaPipe Face Mesh finds the face in every frame."""
    from talkbench.cli.main import main

    _, data = demo_curated
    root = tmp_path_factory.mktemp("speech-learning")
    manifest = data / "clips.parquet"
    stage1, stage2 = root / "motion", root / "a2m"
    lat, tg = root / "motion_latents.parquet", root / "motion_targets.parquet"
    assert main(["train", "motion", "--manifest", str(manifest), "--out", str(stage1), "--preset", "tiny",
                 "--max-steps", str(MOTION_STEPS), "--batch-size", str(MOTION_BATCH), "--perceptual",
                 "none-l1-pyramid", "--num-workers", "0", "--ckpt-every", str(MOTION_STEPS)]) == 0
    assert main(["extract-motion", "--manifest", str(manifest), "--checkpoint", str(stage1 / "last.pt"),
                 "--split", "train", "--out", str(lat)]) == 0
    assert main(["extract-targets", "--manifest", str(manifest), "--split", "train", "--out", str(tg)]) == 0
    assert main(["train", "audio2motion", "--manifest", str(manifest), "--motion-checkpoint", str(stage1 / "last.pt"),
                 "--latents", str(lat), "--targets", str(tg), "--preset", "tiny", "--window", str(WINDOW),
                 "--max-steps", str(A2M_STEPS), "--batch-size", "8", "--lr", "1e-3", "--device", "cpu", "--quiet",
                 "--out", str(stage2)]) == 0
    return {"manifest": manifest, "stage1": stage1 / "last.pt", "stage2": stage2 / "last.pt", "data": data}


def held_out_clips(manifest):
    from talkbench.manifests import read_table

    return [r for r in read_table(manifest, "clips").to_pylist() if r["split"] == "test" and r["has_audio"]]


@pytest.mark.slow
@pytest.mark.skip(reason=NOT_MET)  # the target, written down; not run in CI while it cannot pass (minutes of training)
def test_ours_mouth_follows_held_out_speech(trained):
    from talkbench.demo import speech_envelope
    from talkbench.media import read_audio, read_frames
    from talkbench.models.speech import load_models, speech_frames

    model, renderer, _ = load_models(trained["stage2"], trained["stage1"])
    clips = held_out_clips(trained["manifest"])
    assert clips, "the curated demo has no held-out clip with speech"
    ours, reversed_, static = [], [], []
    for clip in clips:
        path = trained["data"] / clip["path"]
        audio = read_audio(path, 16000)
        portrait = read_frames(path)[0]
        env = speech_envelope(audio)

        def generate(speech):
            return np.concatenate(list(speech_frames(model, renderer, portrait, speech, steps=DDIM_STEPS)))

        ours.append(mouth_envelope_corr(generate(audio), env))
        reversed_.append(mouth_envelope_corr(generate(audio[::-1].copy()), env))
        static.append(mouth_envelope_corr(np.repeat(portrait[None], len(env), 0), env))
    print(f"held-out mouth/envelope correlation: ours {np.round(ours, 3)}, reversed speech {np.round(reversed_, 3)}, "
          f"static {np.round(static, 3)}")
    ours_m, rev_m, static_m = np.mean(ours), np.mean(reversed_), np.mean(static)
    assert ours_m > MIN_CORR, (ours, reversed_, static)
    assert ours_m - static_m > MIN_GAP and ours_m - rev_m > MIN_GAP, (ours, reversed_, static)

