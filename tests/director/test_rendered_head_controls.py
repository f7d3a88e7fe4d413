"""Nod, shake and zoom on RENDERED video with the tiny models (issue 16): met, with the head-turn material.

The issue asks that, on the demo talking material with the tiny models, directed ``ours`` beats the neutral video for
nod (pitch oscillation energy), shake (yaw oscillation energy) and zoom, measured by the instruction benchmark on
rendered video. Zoom is a camera crop at render. Nod and shake needed three links, each measured on the 2-core CPU box
on the demo's first held-out clip (the astronaut):

1. **Material that turns.** The default demo moves heads in plane only (translation, scale, roll:
   ``test_demo_material_has_no_out_of_plane_head_motion``), so no model can learn a nod from it. ``demo make
   --head-turns`` turns the talking portraits' heads (a sphere-warped face, yaw and pitch, ``demo.TURNS``); the face
   module reads yaw std 4.6-7.4° and pitch 3.2-7.8° on its six portrait clips (``tests/test_demo.py``).
2. **A renderer that draws motion.** The tiny stage 1 (``tiny-mouth``) learnt flows of 0.1-0.3 px at 64 px in
   1000-3000 CPU steps and rendered no head motion at all (self-reenactment: yaw std 0.1-0.6° against 4-8° in the
   clips). ``tiny-turn`` adds a coarse flow, linear in the motion-code change (``models.motion.CoarseFlow``): after
   1000 steps self-reenactment follows the clips (train clips: yaw r 0.87/0.93, pitch r 0.93, horizontal position
   r 0.98-1.00; held-out astronaut: yaw r 0.60-0.90, position r 0.57-0.99), and moving the held-out portrait's code
   along the train codes' pose directions by a 12° / 2 Hz nod reads 67 deg² of pitch oscillation (shake 15°:
   20.8 deg² of yaw) against 0 for the still code.
3. **A stage 2 the plan's pose reaches.** The tiny stage 2 modelling absolute codes generated codes that jumped
   0.6-1.2 rms from frame to frame (the clips' own: 0.01-0.02), which the new renderer draws as a torn face (neutral
   pitch oscillation 142 deg²). Modelling the motion relative to the hint (``relative``, the ``tiny-turn``
   audio2motion preset) cuts that to 0.22-0.29. The plan's pose track through the variance adapter alone still moved
   nothing (nod 21.9 against neutral 22.4 deg²; shake 6.25 against 6.24): 600 CPU steps do not tie the denoiser to its
   pose input. Directed generation therefore also steers the codes with the checkpoint's pose→code map (a
   least-squares fit on the train clips, r² 0.59; ``DirectedConfig.pose_steer``, recorded as ``pose_steer`` in the
   result).

With all three (``scripts/train_learning_fixture.py --recipe turn``; checkpoints committed in
``tests/data/head_turns``), ``bench run --task instruction --method ours --instructions i01,i02,i05 --limit 1
--steps 10`` gives:

| control | ours | neutral | adherence (log ratio / diff) | margin | success |
|---|---|---|---|---|---|
| nod (pitch osc., deg²) | 104.7 | 22.4 | 1.540 | 0.405 | yes |
| shake (yaw osc., deg²) | 16.15 | 6.24 | 0.950 | 0.405 | yes |
| zoom-in (log scale change) | 0.235 | 0.002 | 0.233 | 0.05 | yes |
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

DDIM_STEPS = 10  # the demo run's instruction step (bench run --task instruction --steps 10)


def test_demo_material_has_no_out_of_plane_head_motion(demo_curated):
    """Why nod / shake cannot be learnt from the DEFAULT demo: its train clips turn the head in plane (roll, which the
    face module finds) but never in yaw or pitch (only the estimator's noise). ``demo make --head-turns`` is the
    material they are learnt from (the checkpoints of the test below)."""
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


FIXTURE = Path(__file__).resolve().parents[1] / "data" / "head_turns"


def test_committed_checkpoints_match_their_recipe():
    from talkbench.media import sha256_file
    from talkbench.models import checkpoints

    record = json.loads((FIXTURE / "recipe.json").read_text())
    assert sha256_file(FIXTURE / "stage1.pt") == record["stage1_sha256"]
    assert sha256_file(FIXTURE / "a2m.pt") == record["a2m_sha256"]
    a2m = checkpoints.load(FIXTURE / "a2m.pt")
    assert a2m["motion_checkpoint_sha"] == record["stage1_sha256"]
    assert a2m["cfg"]["model"]["relative"] and a2m["cfg"]["model"]["motion_preset"] == "tiny-turn"
    assert record["recipe"]["demo"] == ["--head-turns"]
    assert a2m["cfg"]["pose_to_motion"]["r2"] > 0.3  # head pose explains much of the turning codes


@pytest.mark.slow
def test_rendered_nod_shake_and_zoom_beat_neutral(demo_curated, tmp_path):
    """The issue's target, on rendered video: directed ``ours`` (the committed head-turn checkpoints) on the demo's
    first held-out clip (the astronaut's shot of hard_cut.mp4, the same pixels in the default and the --head-turns
    material) beats the neutral video on nod, shake and zoom-in, by the benchmark's own margins."""
    import pyarrow.parquet as pq

    from talkbench.bench.instruction import demo_instruction_run

    _, data = demo_curated
    out = demo_instruction_run(tmp_path / "run", data / "clips.parquet", FIXTURE / "stage1.pt", FIXTURE / "a2m.pt",
                               ids=("i01", "i02", "i05"), limit=1, steps=DDIM_STEPS)
    rows = {r["metric"]: r for r in pq.read_table(out / "results.parquet").to_pylist() if r["clip_id"]}
    found = {m: (rows[m]["value"], json.loads(rows[m]["extra"])["success"]) for m in ("adh_nod", "adh_shake",
                                                                                    "adh_zoom_in")}
    print("rendered adherence (value, success):", found)
    assert all(ok for _, ok in found.values()), found
    # measured (see the module docstring): nod 1.540, shake 0.950, zoom-in 0.233; asserted at about 2/3
    assert found["adh_nod"][0] > 1.0 and found["adh_shake"][0] > 0.6 and found["adh_zoom_in"][0] > 0.15, found
