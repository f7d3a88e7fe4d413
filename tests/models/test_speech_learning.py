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

# The best recipe measured (issue 10, session 2), not the `demo run` one: stage 1 on the "tiny-mouth" preset (the
# standardised motion code) with the mouth-region L1 and near-in-time pairs; stage 2 on its latents.
MOTION_PRESET, MOTION_STEPS, MOTION_BATCH, MOTION_LR = "tiny-mouth", 600, 4, 2e-3
MOUTH_WEIGHT, NEAR_PAIRS = 30.0, 0.5
A2M_STEPS, WINDOW, DDIM_STEPS = 600, 50, 20

# What "clearly above" means here: ours must reach a correlation of 0.3 with the envelope and beat static (0) and
# ours-on-reversed-speech by 0.2. NOT YET MET. Measured on the 2-core CPU box (under load 6-11), per held-out clip
# (the astronaut's three clips; ground truth 0.883 / 0.908 / 0.899):
# - the `demo run` recipe (plain tiny, 20 steps; stage 2 150 steps): ours 0.063 / -0.060 / -0.031, reversed
#   0.116 / -0.014 / 0.058. Plain tiny's motion code does not change between frames (std over a clip 0.003 against
#   |alpha| 0.17 at init, 0.0009 after 300 steps), so its renders stay at `static` (rendered lip-gap spread 0.5-1 %
#   of the truth's, also after 300 steps with the mouth L1);
# - stage 1 alone, this recipe (600 steps, 180 s): self-reenacting the held-out clips, the rendered lip gap follows
#   the envelope at 0.281 / 0.060 / 0.277 (spread 6-12 % of the truth's); at 300 steps (mouth weight 10) -0.07 /
#   -0.06 / 0.02. Its codes carry the mouth: a linear probe to the lip gap gives 0.73-0.86 on train clips, 0.25-0.50
#   held out;
# - stage 2 is what fails: on those codes, 150 steps (19 s) give ours 0.158 / -0.153 / 0.230 against reversed
#   0.145 / -0.295 / 0.274 in the rendered video; in latent space (the probe on generated codes) 600 steps give ours
#   0.148 / -0.249 / 0.097, reversed 0.143 / -0.248 / 0.085, other speech 0.084 / -0.255 / 0.147 — and on the train
#   clips' own speech -0.04 … 0.05 (guidance 3: the same; 300 steps with hint and identity zeroed, so windows
#   cannot be memorised from them: train 0.03 vs reversed 0.03). Stage 2 does not tie the mouth direction of the
#   codes to the speech, even on the speech it trained on. The likely reason: the envelope explains 1 % of the
#   within-clip variance of the (per-dimension standardised) train codes — best single dimension |r| 0.18 — the
#   rest is head motion that speech cannot predict, so the speech term is ~1 % of the diffusion loss.
MIN_CORR, MIN_GAP = 0.3, 0.2
NOT_MET = ("not reached: stage 1 (tiny-mouth, 600 CPU steps) renders held-out mouths at r = 0.21 with the envelope, "
           "but stage 2 (600 steps) does not follow the speech (ours 0.00, reversed -0.01 in latent space): the envelope "
           "explains 1 % of the codes' within-clip variance; issue 10, see the measured figures above")


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
    """Stage 1 + stage 2 trained on the demo's train split (the recipe above); latents and targets are written
    outside the fixture. Frames are generated at the portrait's size (256 px: the 64 px model's flow warps the full-size
    portrait), where MediaPipe Face Mesh finds the face in every frame."""
    from talkbench.cli.main import main
    from talkbench.models.train_motion import LossWeights, TrainConfig
    from talkbench.models.train_motion import main as train_motion

    _, data = demo_curated
    root = tmp_path_factory.mktemp("speech-learning")
    manifest = data / "clips.parquet"
    stage1, stage2 = root / "motion", root / "a2m"
    lat, tg = root / "motion_latents.parquet", root / "motion_targets.parquet"
    train_motion(TrainConfig(manifest=str(manifest), out=str(stage1), preset=MOTION_PRESET, max_steps=MOTION_STEPS,
                             batch_size=MOTION_BATCH, lr=MOTION_LR, device="cpu", perceptual="none-l1-pyramid",
                             num_workers=0, near_pairs=NEAR_PAIRS, image_every=10 ** 6, ckpt_every=MOTION_STEPS,
                             weights=LossWeights(gan=0.0, aam=0.0, triplet=0.0, club=0.0, mouth=MOUTH_WEIGHT)))
    assert main(["extract-motion", "--manifest", str(manifest), "--checkpoint", str(stage1 / "last.pt"),
                 "--split", "train", "--out", str(lat)]) == 0
    assert main(["extract-targets", "--manifest", str(manifest), "--split", "train", "--out", str(tg)]) == 0
    assert main(["train", "audio2motion", "--manifest", str(manifest), "--motion-checkpoint", str(stage1 / "last.pt"),
                 "--latents", str(lat), "--targets", str(tg), "--preset", MOTION_PRESET, "--window", str(WINDOW),
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
    ours, reversed_, other, static = [], [], [], []
    for k, clip in enumerate(clips):
        path = trained["data"] / clip["path"]
        audio = read_audio(path, 16000)
        portrait = read_frames(path)[0]
        env = speech_envelope(audio)

        def generate(speech):
            return np.concatenate(list(speech_frames(model, renderer, portrait, speech, steps=DDIM_STEPS)))

        ours.append(mouth_envelope_corr(generate(audio), env))
        reversed_.append(mouth_envelope_corr(generate(audio[::-1].copy()), env))
        other_clip = clips[(k + 1) % len(clips)]  # another held-out clip's speech, measured against this envelope
        other.append(mouth_envelope_corr(generate(read_audio(trained["data"] / other_clip["path"], 16000)), env))
        static.append(mouth_envelope_corr(np.repeat(portrait[None], len(env), 0), env))
    print(f"held-out mouth/envelope correlation: ours {np.round(ours, 3)}, reversed speech {np.round(reversed_, 3)}, "
          f"other speech {np.round(other, 3)}, static {np.round(static, 3)}")
    ours_m, rev_m, other_m, static_m = np.mean(ours), np.mean(reversed_), np.mean(other), np.mean(static)
    assert ours_m > MIN_CORR, (ours, reversed_, other, static)
    assert ours_m - static_m > MIN_GAP, (ours, static)
    assert ours_m - rev_m > MIN_GAP and ours_m - other_m > MIN_GAP, (ours, reversed_, other)

