"""Upper-body demo material: known motion tied to espeak-ng speech, recovered by the target extractors.

The expression basis is fitted on one clip (``person_b_alt``: other words, other voice) and read on another
(``person_b``), so the mouth signal it recovers cannot come from fitting that clip. Thresholds were measured on this
machine (see each assert) and set with a margin.
"""

from __future__ import annotations

import numpy as np
import pytest

from talkbench.demo_upper import (HAND_LIFT, UPPER_DEMO, gesture_curve, make_upper_demo, render_upper,
                                  speech_envelope, stressed_syllables)

pytest.importorskip("mediapipe")
pytest.importorskip("insightface")  # t1.jpg

SECONDS = 2.0
STEP = 2  # Pose/Hands on every second frame: enough samples, half the time


@pytest.fixture(scope="module")
def clips():
    return {"train": render_upper("person_b_alt", SECONDS, 0.7), "eval": render_upper("person_b", SECONDS)}


@pytest.fixture(scope="module")
def eval_landmarks(clips):
    from talkbench.curation.targets import detect_landmarks

    frames = clips["eval"][0]
    return detect_landmarks(frames[::STEP])


def _corr(a, b) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_motion_is_tied_to_the_speech(clips):
    _, audio, truth = clips["eval"]
    env = truth["envelope"]
    assert env.max() == 1.0 and env.min() < 0.2  # pauses close the mouth
    assert np.allclose(truth["mouth_px"], 0.07 * truth["face_size"] * env)
    # a gesture peaks exactly on each stressed syllable, and only there
    assert len(truth["peaks"]) >= 2
    assert np.all(truth["gesture"][truth["peaks"]] == 1.0)
    assert np.allclose(truth["hand_dy"], -HAND_LIFT * truth["face_size"] * truth["gesture"])
    quiet = np.ones(len(env), bool)
    for p in truth["peaks"]:
        quiet[max(0, p - 6): p + 7] = False
    assert np.all(truth["gesture"][quiet] == 0)
    # the same speech gives the same envelope; silence gives no syllables
    assert np.array_equal(speech_envelope(audio, len(env)), env)
    assert len(stressed_syllables(np.zeros(50))) == 0 and gesture_curve(np.array([], int), 5).sum() == 0


def test_render_is_deterministic_and_warps_the_lower_face(clips):
    frames, _, truth = clips["eval"]
    once, _, _ = render_upper("person_b", 0.2)
    again, _, _ = render_upper("person_b", 0.2)
    later, _, _ = render_upper("person_b", 0.2, t0=0.5)
    assert np.array_equal(once, again) and not np.array_equal(once, later)
    # the widest-open frame differs from the most closed one around the mouth more than at the forehead
    open_i, shut_i = int(np.argmax(truth["envelope"])), int(np.argmin(truth["envelope"]))
    fc = truth["face_centre"].astype(int)
    s = int(truth["face_size"])
    diff = np.abs(frames[open_i].astype(float) - frames[shut_i].astype(float)).mean(-1)
    mouth = diff[fc[1] + s // 5: fc[1] + s // 2, fc[0] - s // 4: fc[0] + s // 4].mean()
    forehead = diff[fc[1] - s // 2: fc[1] - s // 4, fc[0] - s // 4: fc[0] + s // 4].mean()
    assert mouth > 2 * forehead


def test_expression_basis_recovers_the_mouth_signal(clips):
    """Measured: |corr(coeff 0, envelope)| 0.95 on the held-out clip; shuffled envelopes: p99 0.31."""
    from talkbench.curation.targets import fit_expression_basis
    from talkbench.faces.detect import mesh_landmarks

    basis = fit_expression_basis(mesh_landmarks(clips["train"][0]), 8)
    assert basis.components.shape == (8, 468 * 3)
    assert np.allclose(basis.components @ basis.components.T, np.eye(8), atol=1e-8)
    frames, _, truth = clips["eval"]
    coeffs = basis.coefficients(mesh_landmarks(frames))
    env = truth["envelope"]
    r = abs(_corr(coeffs[:, 0], env))
    rng = np.random.default_rng(0)
    shuffled = [abs(_corr(coeffs[:, 0], rng.permutation(env))) for _ in range(200)]
    assert r > 0.8
    assert r > np.percentile(shuffled, 99) + 0.3
    # pose is removed: a rigidly moved mesh (3-D rotation, scale, translation) has the same coefficients
    mesh = mesh_landmarks(frames[:1])[0]
    a = np.radians(25.0)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]) @ \
        np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    moved = 1.7 * mesh @ rot.T + np.array([40.0, -12.0, 5.0])
    assert np.allclose(basis.coefficients(moved[None]), basis.coefficients(mesh[None]), atol=1e-9)
    assert not np.allclose(coeffs[0], coeffs[int(np.argmax(env))], atol=1e-3)


def test_body_and_hand_keypoints_follow_the_known_motion(clips, eval_landmarks):
    """Measured: shoulder-centre x vs torso sway corr 0.91; raised-hand y vs hand lift corr 0.996 (residual 3.1 px
    against a 5.7 px limit); head roll (faces.pose) vs applied roll corr 0.98."""
    _, _, truth = clips["eval"]
    lm = eval_landmarks
    t = np.arange(0, len(truth["t"]), STEP)
    shoulders = lm.body[:, [11, 12], :2].mean(1)
    assert np.all(lm.body_visibility[:, [11, 12]] > 0.5)
    r_torso = _corr(shoulders[:, 0], truth["torso_dx"][t])
    assert r_torso > 0.7
    slot = int(np.argmax((lm.hand_score > 0).sum(0)))
    seen = lm.hand_score[:, slot] > 0
    assert seen.mean() > 0.9
    hand_y = lm.hands[seen, slot, :, 1].mean(1)
    expect_y = truth["hand_dy"][t][seen] + truth["torso_dy"][t][seen]
    assert _corr(hand_y, expect_y) > 0.9
    residual = hand_y - expect_y
    assert residual.std() < 0.1 * HAND_LIFT * truth["face_size"]  # follows the lift within 10 % of its size
    # the head's roll (faces.pose on the mesh) follows the applied rotation
    from talkbench.faces.pose import head_pose

    roll = head_pose(lm.mesh)[:, 2]
    assert _corr(roll, truth["head_roll"][t]) > 0.9


def test_make_upper_demo_writes_videos_with_their_ground_truth(tmp_path):
    sources = make_upper_demo(tmp_path, seconds=0.4, names=["upper_person_b_a.mp4"])
    from talkbench.media import read_audio, video_size

    assert sources.read_text().splitlines() == ["url,start,end,identity", "upper_person_b_a.mp4,,,t1"]
    assert video_size(tmp_path / "upper_person_b_a.mp4") == (600, 840)
    truth = np.load(tmp_path / "upper_person_b_a.npz")
    assert truth["envelope"].shape == (10,) and "hand_dy" in truth.files
    assert read_audio(tmp_path / "upper_person_b_a.mp4") is not None
    assert set(UPPER_DEMO) >= {"upper_person_b_a.mp4", "upper_astronaut.mp4", "upper_wide.mp4"}
