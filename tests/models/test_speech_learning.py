"""Speech-driven ``ours`` learns the demo's audio→mouth relationship (issue 10), on held-out speech.

The demo portraits open their jaw with the espeak-ng speech envelope (``talkbench.demo.open_mouth``). Tiny stage-1 and
stage-2 models are trained on the curated train split (person_b, person_c) by ``scripts/train_learning_fixture.py``
with the commands a user types; the resulting checkpoints are committed in ``tests/data/speech_learning/`` (stage1.pt,
a2m.pt, and recipe.json with the recipe, seeds and hashes), so CI only generates. The held-out material is the
astronaut's three test clips (two of them carry the same stretch of speech, so "other speech" is a clip whose speech
differs). Three tests:

1. STAGE 2 (runs in CI, met): the motion codes stage 2 generates for held-out speech carry a mouth that follows that
   speech. The mouth is read from the codes with the probe stored in the checkpoint (the least-squares direction from
   the train clips' codes to their lip gap; on the held-out clips' own encoded codes it follows the real lip gap, which
   is checked too). Its correlation with the envelope must be clearly above the same for time-reversed speech and for
   other speech (and above 0, static's value).
2. RENDERED (the issue's target, runs in CI, met on held-out speech): the lip gap of the video ``ours`` generates,
   from the shared face module, against the envelope of held-out speech (the astronaut's test clips, a voice and text
   no train clip has), drawn on the train identities' portraits, with a second committed pair
   (``tests/data/speech_rendered``: stage 1 and 2 ``tiny-lips``). It must be clearly above static, reversed speech
   and other speech. On the held-out identity's portrait it is not met (figures at ``RENDERED_FIGURES``).
3. Re-training (``TALKBENCH_RUN_SLOW=1``): the script's recipes from the curated demo meet tests 1's and 2's
   thresholds.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "speech_learning"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_learning_fixture.py"
DDIM_STEPS, GUIDANCE, SEED = 20, 4.0, 0  # `generate speech --steps 20 --guidance 4 --seed 0`

# Measured on the committed checkpoints (2-core CPU box, torch 2.13 CPU; generation is seeded, so these repeat), per
# held-out clip (2469d45e / a9db6c66 / b07aebee), correlation with the clip's envelope of the mouth that the probe
# reads from the generated codes:
#                        guidance 1                guidance 4 (tested)         guidance 8
#   ours                 0.128 / -0.168 / 0.109    0.242 / 0.171 / 0.238       0.290 / 0.296 / 0.297
#   reversed speech      0.037 / -0.307 / 0.035    -0.074 / -0.204 / 0.050     -0.221 / -0.137 / 0.063
#   other speech         0.037 / -0.265 / 0.046    -0.052 / -0.176 / -0.036    -0.091 / -0.097 / -0.065
# The probe on the clips' own encoded codes against their real lip gap: 0.482 / 0.283 / 0.339; against the envelope:
# 0.336 / 0.289 / 0.295, which is about as well as a mouth read from codes can follow the envelope here.
# AniTalker's recipe on the same stage 1 (preset `tiny-mouth`, 600 steps, read with this probe; guidance 4): ours
# 0.116 / -0.220 / 0.035, reversed 0.105 / -0.143 / -0.006, other -0.056 / -0.059 / -0.029 — no learning, and
# check_codes fails on it (guidance 8: ours 0.069 / -0.238 / -0.001).
# Thresholds, about 2/3 of the smallest measured value: every clip's ours above MIN_OURS (smallest 0.171), every
# clip's ours above its reversed and other by MIN_GAP (smallest 0.188), and on average by MIN_MEAN_GAP (0.293, 0.305).
MIN_OURS, MIN_GAP, MIN_MEAN_GAP = 0.11, 0.12, 0.2

# The rendered target (the measure) on the committed pair above (tiny-mouth / tiny-talk) is NOT met: rendered
# lip gap against the envelope on the held-out clips, guidance 4: ours 0.170 / -0.120 / 0.179, reversed
# 0.051 / -0.228 / 0.152, other 0.207 / -0.149 / 0.105; stage 1 there does not draw the codes' mouth. The pair that
# meets it is the next one.

# The rendered pair (tests/data/speech_rendered, `train_learning_fixture.py --recipe lips`): stage 1 "tiny-lips" (a
# coarse-flow window on the mouth, whose lip stretch is linear in the code change) and stage 2 "tiny-lips" (its mouth
# direction is that stretch's line in code space, not a probe fitted to the lip gap). Measured on the committed files
# (2-core CPU box; seeded, so they repeat), the rendered lip gap against the envelope of held-out speech, per
# (train portrait, held-out speech), guidance 4:
RENDERED_FIGURES = """
portrait (train clip)   held-out speech   ours    reversed   other   static
person 1180643a         2469d45e          0.450   -0.302     -0.160  0
person 1180643a         a9db6c66          0.652    0.115     -0.011  0
person 24bb90c4         2469d45e          0.188    0.012     -0.090  0
person 24bb90c4         a9db6c66          0.359    0.030     -0.057  0
mean                                      0.412   -0.036     -0.079  0
ours minus the best of the other three: 0.450 / 0.536 / 0.176 / 0.329, mean 0.373 (21 s on the 2-core box).
(b07aebee, the third held-out clip, repeats 2469d45e's speech and is left out: 0.44 / 0.11 for ours.)
Held-out identity, NOT met: on the astronaut's own portrait the renderer loses the face in 16-22 % of the frames
(the face mesh finds none), and what is left does not separate: guidance 1, ours 0.389 / -0.074 against reversed
0.150 / 0.135 and other 0.168 / -0.005; guidance 4, 18 % of the frames lost. Its self-reenactment shows why: the
held-out clips' own codes drive the lip stretch with 6x the spread of the train clips' (std 0.062-0.070 against
0.010-0.012 of the flow grid), correlated -0.07 … -0.40 with the real lip gap against -0.52 … -0.78 on train clips;
two train identities are too few for the encoder to place a new face's mouth on the same line.
With a fitted lip-gap probe as stage 2's mouth direction instead (the tiny-talk recipe on the same stage 1), the
codes follow the speech (0.285 / 0.345 / 0.156) but the renderer's stretch does not (train portraits: ours 0.054,
reversed -0.046, other -0.091): stage 2 has to model the line the renderer reads.
"""
# about 2/3 of the measured: mean of ours, smallest and mean margin over the best of static, reversed, other
RENDER_MIN_MEAN, RENDER_MIN_GAP, RENDER_MIN_MEAN_GAP = 0.27, 0.11, 0.25
RENDERED = FIXTURE.parent / "speech_rendered"


def held_out(data: Path) -> list[dict]:
    """The held-out clips with speech, each with its audio, envelope, first frame and an ``other`` clip index whose
    speech differs (envelope correlation < 0.5)."""
    from talkbench.demo import speech_envelope
    from talkbench.manifests import read_table
    from talkbench.media import read_audio, read_frames

    rows = [r for r in read_table(data / "clips.parquet", "clips").to_pylist()
            if r["split"] == "test" and r["has_audio"]]
    assert rows, "the curated demo has no held-out clip with speech"
    clips = []
    for r in rows:
        audio = read_audio(data / r["path"], 16000)
        clips.append({"clip_id": r["clip_id"], "path": data / r["path"], "audio": audio,
                      "envelope": speech_envelope(audio), "portrait": read_frames(data / r["path"])[0]})
    for k, c in enumerate(clips):
        n = min(len(x["envelope"]) for x in clips)
        differ = [j for j, x in enumerate(clips) if j != k
                  and np.corrcoef(x["envelope"][:n], c["envelope"][:n])[0, 1] < 0.5]
        assert differ, "no held-out clip with other speech"
        c["other"] = differ[0]
    return clips


def corr(signal: np.ndarray, envelope: np.ndarray) -> float:
    k = min(len(signal), len(envelope))
    s, e = np.asarray(signal[:k], np.float64), envelope[:k]
    ok = ~np.isnan(s)
    assert ok.mean() > 0.9, f"signal missing in {1 - ok.mean():.0%} of the frames"
    return 0.0 if np.std(s[ok]) < 1e-9 else float(np.corrcoef(s[ok], e[ok])[0, 1])


def load(stage2: Path, stage1: Path):
    """(stage 2, stage 1, mouth probe): the probe maps motion codes (T, 20) to the checkpoint's mouth direction of the
    per-dimension-normalised codes (T,), the lip gap up to scale and offset."""
    import torch

    from talkbench.models import checkpoints
    from talkbench.models.speech import load_models

    model, renderer, _ = load_models(stage2, stage1)
    u = torch.tensor(checkpoints.load(stage2)["cfg"]["mouth_direction"]["direction"])

    def probe(motion):
        x = (motion - model.diffusion.data_mean) / model.diffusion.data_scale  # before the stretch (u is its axis)
        return (x @ u).numpy()
    return model, renderer, probe


def code_correlations(stage2: Path, stage1: Path, data: Path) -> dict[str, list[float]]:
    """Per held-out clip: the probe's mouth on the generated codes against the clip's envelope for its own speech,
    the same reversed, other speech; and the probe on the clip's own encoded codes against its real lip gap."""
    from talkbench.faces.detect import mesh_landmarks
    from talkbench.faces.points import lip_gap
    from talkbench.media import read_frames
    from talkbench.models.speech import PortraitRenderer, speech_motion

    import torch

    model, renderer, probe = load(stage2, stage1)
    clips = held_out(data)
    out = {"ours": [], "reversed": [], "other": [], "probe_vs_real_gap": []}
    for c in clips:
        src = PortraitRenderer(renderer, c["portrait"]).source

        def mouth(speech):
            motion = speech_motion(model, speech, src.alpha.float(), src.identity.float(), steps=DDIM_STEPS,
                                   guidance=GUIDANCE, seed=SEED)["motion"][0]
            return probe(motion)

        out["ours"].append(corr(mouth(c["audio"]), c["envelope"]))
        out["reversed"].append(corr(mouth(c["audio"][::-1].copy()), c["envelope"]))
        out["other"].append(corr(mouth(clips[c["other"]]["audio"]), c["envelope"]))
        frames = read_frames(c["path"])
        real = probe(torch.from_numpy(renderer.encode(frames)["motion"]).float())
        out["probe_vs_real_gap"].append(corr(lip_gap(mesh_landmarks(frames)), real))
    return out


def check_codes(c: dict[str, list[float]]) -> None:
    print("held-out, mouth of the generated codes vs the envelope:", {k: np.round(v, 3).tolist() for k, v in c.items()})
    ours, rev, other = (np.array(c[k]) for k in ("ours", "reversed", "other"))
    assert np.all(np.array(c["probe_vs_real_gap"]) > 0.2), c  # the probe reads the mouth of held-out codes
    assert np.all(ours > MIN_OURS), c  # static (a constant mouth) has 0
    assert np.all(ours - rev > MIN_GAP) and np.all(ours - other > MIN_GAP), c
    assert (ours - rev).mean() > MIN_MEAN_GAP and (ours - other).mean() > MIN_MEAN_GAP, c


def test_committed_checkpoints_match_their_recipe():
    """The committed files are the ones recipe.json describes, and stage 2 names that stage 1 (a mismatched pair is
    refused: test_speech.py)."""
    from talkbench.media import sha256_file
    from talkbench.models import checkpoints

    record = json.loads((FIXTURE / "recipe.json").read_text())
    assert sha256_file(FIXTURE / "stage1.pt") == record["stage1_sha256"]
    assert sha256_file(FIXTURE / "a2m.pt") == record["a2m_sha256"]
    a2m = checkpoints.load(FIXTURE / "a2m.pt")
    assert a2m["motion_checkpoint_sha"] == record["stage1_sha256"]
    model = a2m["cfg"]["model"]
    assert model["mouth_stretch"] and model["teacher_forcing"] and model["standardize_targets"]
    assert a2m["cfg"]["train"]["mouth_weight"] == record["recipe"]["stage2"]["mouth_weight"]


def test_stage2_mouth_follows_held_out_speech(demo_curated):
    _, data = demo_curated
    check_codes(code_correlations(FIXTURE / "a2m.pt", FIXTURE / "stage1.pt", data))


def train_portraits(data: Path) -> list[np.ndarray]:
    """The first frame of the first train clip of each train identity (the portraits stage 1 and 2 saw)."""
    from talkbench.manifests import read_table
    from talkbench.media import read_frames

    first = {}
    for r in sorted(read_table(data / "clips.parquet", "clips").to_pylist(), key=lambda r: r["clip_id"]):
        if r["split"] == "train" and r["has_audio"]:
            first.setdefault(r["identity_id"], r)
    return [read_frames(data / r["path"])[0] for r in first.values()]


def distinct_speech(clips: list[dict]) -> list[dict]:
    """The held-out clips less those whose speech repeats an earlier one's (envelope correlation > 0.9)."""
    kept = []
    for c in clips:
        n = min(len(c["envelope"]), *(len(k["envelope"]) for k in kept)) if kept else 0
        if all(np.corrcoef(c["envelope"][:n], k["envelope"][:n])[0, 1] <= 0.9 for k in kept):
            kept.append(c)
    return kept


def rendered_correlations(stage2: Path, stage1: Path, data: Path, portraits: list[np.ndarray]) -> dict[str, list]:
    """Per (portrait, held-out speech): the lip gap of the rendered video (shared face module) against the speech's
    envelope, for ours (that speech), reversed, other speech, and static (the portrait repeated: 0)."""
    from talkbench.faces.detect import mesh_landmarks
    from talkbench.faces.points import lip_gap
    from talkbench.models.speech import speech_frames

    model, renderer, _ = load(stage2, stage1)
    clips = held_out(data)
    out = {"ours": [], "reversed": [], "other": [], "static": []}
    speeches = distinct_speech(clips)
    for portrait in portraits:
        gaps = {}  # (clip index, reversed) → lip gap: a clip's "other" speech is often another kept clip's own

        def gap(k, backwards=False):
            if (k, backwards) not in gaps:
                speech = clips[k]["audio"][::-1].copy() if backwards else clips[k]["audio"]
                frames = np.concatenate(list(speech_frames(model, renderer, portrait, speech, steps=DDIM_STEPS,
                                                           guidance=GUIDANCE, seed=SEED)))
                gaps[k, backwards] = lip_gap(mesh_landmarks(frames))
            return gaps[k, backwards]

        for c in speeches:
            k = clips.index(c)
            out["ours"].append(corr(gap(k), c["envelope"]))
            out["reversed"].append(corr(gap(k, backwards=True), c["envelope"]))
            out["other"].append(corr(gap(c["other"]), c["envelope"]))
            static = np.repeat(lip_gap(mesh_landmarks(portrait[None])), len(c["envelope"]))
            out["static"].append(corr(static, c["envelope"]))
    return out


def check_rendered(out: dict[str, list]) -> None:
    print("held-out speech, rendered lip gap vs the envelope:", {k: np.round(v, 3).tolist() for k, v in out.items()})
    ours = np.array(out["ours"])
    best_other = np.max([out[k] for k in ("static", "reversed", "other")], axis=0)
    assert ours.mean() > RENDER_MIN_MEAN, out
    assert np.all(ours - best_other > RENDER_MIN_GAP), out
    assert (ours - best_other).mean() > RENDER_MIN_MEAN_GAP, out


def test_committed_rendered_pair_matches_its_recipe():
    import torch

    from talkbench.media import sha256_file
    from talkbench.models import checkpoints
    from talkbench.models.train_audio2motion import mouth_stretch_row

    record = json.loads((RENDERED / "recipe.json").read_text())
    assert sha256_file(RENDERED / "stage1.pt") == record["stage1_sha256"]
    assert sha256_file(RENDERED / "a2m.pt") == record["a2m_sha256"]
    assert record["recipe"]["stage1"]["preset"] == "tiny-lips" and record["recipe"]["stage2"]["preset"] == "tiny-lips"
    a2m = checkpoints.load(RENDERED / "a2m.pt")
    assert a2m["motion_checkpoint_sha"] == record["stage1_sha256"]
    # stage 2's mouth direction is the renderer's lip-stretch line, in the normalised code space
    mouth = a2m["cfg"]["mouth_direction"]
    assert mouth["source"] == "renderer's lip stretch"
    row = mouth_stretch_row(RENDERED / "stage1.pt") * a2m["ema"]["diffusion.data_scale"]
    assert abs(float(torch.nn.functional.cosine_similarity(row, torch.tensor(mouth["direction"]), 0))) > 0.999


@pytest.mark.slow
def test_rendered_mouth_follows_held_out_speech(demo_curated):
    """The issue's measure, on held-out speech drawn on the train identities' portraits (see RENDERED_FIGURES)."""
    _, data = demo_curated
    check_rendered(rendered_correlations(RENDERED / "a2m.pt", RENDERED / "stage1.pt", data, train_portraits(data)))


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TALKBENCH_RUN_SLOW"),
                    reason="re-trains both stages (speech: 7.9 min on the 2-core box at load 10; lips: 4.5 min "
                           "idle); TALKBENCH_RUN_SLOW=1 runs it")
@pytest.mark.parametrize("recipe", ["speech", "lips"])
def test_retrained_checkpoints_follow_held_out_speech(recipe, demo_curated, tmp_path):
    """The script's recipes, re-run from the curated demo, meet the same thresholds: the speech recipe the codes
    test's, the lips recipe the rendered test's."""
    spec = importlib.util.spec_from_file_location("train_learning_fixture", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    _, data = demo_curated
    out = tmp_path / "out"
    script.build(out, data, tmp_path / "work", recipe=script.RECIPES[recipe])
    if recipe == "speech":
        check_codes(code_correlations(out / "a2m.pt", out / "stage1.pt", data))
    else:
        check_rendered(rendered_correlations(out / "a2m.pt", out / "stage1.pt", data, train_portraits(data)))
