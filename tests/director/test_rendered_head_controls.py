"""Nod and shake on RENDERED video with the tiny models trained on the demo material (issue 16): NOT MET, and why.

The issue asks that, on the demo talking material with the tiny models, directed ``ours`` beats the neutral video for
nod (pitch oscillation energy), shake (yaw oscillation energy) and zoom, measured by the instruction benchmark on
rendered video. Zoom is met (``test_instruction_task.py``: a camera crop at render). Nod and shake are not, and they
cannot be with the demo material as it is. Measured (session 2, the 2-core CPU box, load 3-6), with the best tiny
recipe known (issue 10: stage 1 on ``tiny-mouth``, 600 steps, batch 4, lr 2e-3, mouth L1 weight 30, near pairs 0.5,
no GAN/identity terms, 180 s; stage 2 ``tiny-mouth``, 200 steps, window 50, batch 8, lr 1e-3, 28 s), on the demo's
first held-out clip (the astronaut), ``bench run --task instruction --method ours --instructions i01,i02,i05
--limit 1 --steps 10`` (4 videos, 36 s):

| control | ours | neutral | adherence (log ratio / diff) | margin | success |
|---|---|---|---|---|---|
| nod (pitch osc., deg²) | 0.531 | 0.560 | -0.053 | 0.405 | no |
| shake (yaw osc., deg²) | 0.1498 | 0.1497 | 0.0008 | 0.405 | no |
| zoom-in (log scale change) | 0.236 | 0.004 | 0.232 | 0.05 | yes |

Where the chain breaks (each link measured on those checkpoints):

1. **The material has no out-of-plane head motion.** ``talkbench.demo`` animates photos with translation, scale and
   in-plane rotation only (``demo.MOTIONS``): the face module reads, over the 5 train clips, yaw std 0.38-0.56°,
   pitch std 0.42-0.87° (the estimator's noise; detrended energy 0.09-0.41 deg²) against roll std 1.4-2.8°. So
   neither stage ever sees a nod or a shake. ``test_demo_material_has_no_out_of_plane_head_motion`` pins this.
2. **The renderer does not turn the head.** Moving the portrait's motion code ±3 σ along each of the 4 main
   within-clip directions of the train codes (99 % of their variance) changes the rendered yaw by ≤ 0.75° and pitch by
   ≤ 0.71° (roll ≤ 1.7°, log scale ≤ 0.014); random directions of 3× the codes' spread: pitch range ≤ 2.3°, as
   distortion, not rotation. A nod of the plan's 12° has no code to land on.
3. **The plan's pose track hardly reaches the motion code.** The 12° nod / 15° shake tracks change the generated
   codes by rms 0.0002 / 0.0003 against the neutral codes' within-clip std 0.65; the adapter's pose encoder moves the
   speech feature by rms 0.0005 (feature rms 0.23), and the decoder's ε by 0.0003 at t = 100 (0.158 for zeroed
   speech). In training the adapter's encoders see its own predictions (``audio2motion``, as AniTalker's inference
   code does), and the pose targets here carry only estimator noise, so nothing ties the pose input to the codes.
   Feeding the target pose/location/scale to the encoders in training (teacher forcing, FastSpeech 2's variance
   adaptor; tried by monkeypatching ``Audio2Motion.losses``, 200 steps) changed nothing measurable (nod rms 0.0002,
   even tilt, which the material has, 0.0015), because of 1.

What would meet it: demo material with yaw/pitch head rotation, so stage 1 learns to render it; then stage 2 trained
with the target pose fed to its adapter (teacher forcing) so the plan's track steers the code. Neither is in the
director's files. A 2-D photo turns out of plane only weakly: measured on the astronaut (256 px), a homography that
turns the image plane about the face centre (focal 1.2 × width) by -40/-20/0/20/40° about the horizontal axis reads
pitch -3.2/-8.1/-11.8/-13.7/-18.5° in the face module, about the vertical axis yaw 2.9/2.6/0.1/-3.1/-5.5° (a
rotation about the camera centre reads nothing: ≤ 1.7°). So a demo "nod" of ±30° plane turn would give the face
module about ±6° of pitch; a 3-D face would give the full angle.

Until then the target test below is skipped; ``TALKBENCH_RUN_NOT_MET=1`` runs it: its own training (192 s at load 6,
after the shared demo curation) reproduced the table above to the last digit, and it fails on nod and shake.
Committing checkpoints for CI was not needed: there is nothing yet for them to show.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

NOT_MET = ("not reached: the demo material has no yaw/pitch head motion, so the tiny stage 1 cannot render a nod or "
           "a shake and stage 2's pose track has nothing to steer (rendered nod -0.05, shake 0.001 against margins "
           "0.41; zoom 0.23 passes); see this module's docstring")

# the recipe (issue 10's best tiny one) and the target margins (the benchmark's own: log 1.5 for nod / shake)
MOTION_STEPS, MOTION_BATCH, MOTION_LR, MOUTH_WEIGHT, NEAR_PAIRS = 600, 4, 2e-3, 30.0, 0.5
A2M_STEPS, WINDOW, DDIM_STEPS = 200, 50, 10


def test_demo_material_has_no_out_of_plane_head_motion(demo_curated):
    """Why nod / shake cannot be learnt from the demo: its train clips turn the head in plane (roll, which the face
    module finds) but never in yaw or pitch (only the estimator's noise). If the demo gains yaw/pitch motion, this
    fails: then train the recipe below and un-skip the target test."""
    from talkbench.manifests import read_table
    from talkbench.media import read_frames
    from talkbench.metrics.instruction import face_tracks

    _, data = demo_curated
    clips = [r for r in read_table(data / "clips.parquet", "clips").to_pylist() if r["split"] == "train"]
    assert len(clips) >= 4
    std = []
    for clip in sorted(clips, key=lambda c: c["clip_id"])[:4]:
        tracks = face_tracks(read_frames(data / clip["path"])[::3])  # every 3rd frame: the spread, not the rhythm
        std.append([np.std(tracks[k]) for k in ("yaw", "pitch", "roll")])
    std = np.array(std)
    # measured (all frames, 5 clips): yaw 0.38-0.56°, pitch 0.42-0.87°, roll 1.4-2.8° (the applied 3-4° rotations)
    assert std[:, :2].max() < 1.2, std
    assert std[:, 2].mean() > 1.5 and std[:, 2].mean() > 2 * std[:, :2].mean(), std


@pytest.fixture(scope="module")
def trained(demo_curated, tmp_path_factory):
    """Stage 1 (tiny-mouth) and stage 2 (tiny-mouth) trained on the demo's train split with the commands a user types
    (stage 1 through its Python entry point for the loss weights the CLI does not expose)."""
    from talkbench.cli.main import main
    from talkbench.models.train_motion import LossWeights, TrainConfig
    from talkbench.models.train_motion import main as train_motion

    _, data = demo_curated
    root = tmp_path_factory.mktemp("rendered-head")
    manifest = data / "clips.parquet"
    stage1, stage2 = root / "motion", root / "a2m"
    lat, tg = root / "motion_latents.parquet", root / "motion_targets.parquet"
    train_motion(TrainConfig(manifest=str(manifest), out=str(stage1), preset="tiny-mouth", max_steps=MOTION_STEPS,
                             batch_size=MOTION_BATCH, lr=MOTION_LR, device="cpu", perceptual="none-l1-pyramid",
                             num_workers=0, near_pairs=NEAR_PAIRS, image_every=10 ** 6, ckpt_every=MOTION_STEPS,
                             weights=LossWeights(gan=0.0, aam=0.0, triplet=0.0, club=0.0, mouth=MOUTH_WEIGHT)))
    assert main(["extract-motion", "--manifest", str(manifest), "--checkpoint", str(stage1 / "last.pt"),
                 "--split", "train", "--out", str(lat)]) == 0
    assert main(["extract-targets", "--manifest", str(manifest), "--split", "train", "--out", str(tg)]) == 0
    assert main(["train", "audio2motion", "--manifest", str(manifest), "--motion-checkpoint", str(stage1 / "last.pt"),
                 "--latents", str(lat), "--targets", str(tg), "--preset", "tiny-mouth", "--window", str(WINDOW),
                 "--max-steps", str(A2M_STEPS), "--batch-size", "8", "--lr", "1e-3", "--device", "cpu", "--quiet",
                 "--out", str(stage2)]) == 0
    return {"manifest": manifest, "stage1": stage1 / "last.pt", "stage2": stage2 / "last.pt", "root": root}


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TALKBENCH_RUN_NOT_MET"), reason=NOT_MET)  # the target, written down
def test_rendered_nod_shake_and_zoom_beat_neutral(trained):
    import pyarrow.parquet as pq

    from talkbench.bench.instruction import demo_instruction_run

    out = demo_instruction_run(trained["root"] / "run", trained["manifest"], trained["stage1"], trained["stage2"],
                               ids=("i01", "i02", "i05"), limit=1, steps=DDIM_STEPS)
    rows = {r["metric"]: r for r in pq.read_table(out / "results.parquet").to_pylist() if r["clip_id"]}
    found = {m: (rows[m]["value"], json.loads(rows[m]["extra"])["success"]) for m in ("adh_nod", "adh_shake",
                                                                                    "adh_zoom_in")}
    print("rendered adherence (value, success):", found)
    assert all(ok for _, ok in found.values()), found
