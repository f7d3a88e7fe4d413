"""SceneStep on real material: Megamind.avi's cuts (inspected by eye) and a generated hard-cut video."""

from __future__ import annotations

import numpy as np
import pytest

from talkbench.curation.config import CurationConfig
from talkbench.curation.scenes import SceneStep, detect_cuts, segment_row, shots_from_cuts
from talkbench.errors import ConfigError


def test_shots_from_cuts_trims_only_at_cuts():
    assert shots_from_cuts([], 100, 3) == [(0, 100)]
    assert shots_from_cuts([40, 70], 100, 3) == [(0, 37), (43, 67), (73, 100)]
    assert shots_from_cuts([40], 100, 0) == [(0, 40), (40, 100)]
    # a shot narrower than the trim collapses to empty, never inverted
    assert shots_from_cuts([40, 42], 100, 3)[1] == (43, 43)


def test_unknown_detector_and_negative_trim_are_refused():
    with pytest.raises(ConfigError, match="unknown scene detector 'histogram'"):
        SceneStep(CurationConfig().with_overrides({"scenes.detector": "histogram"}))
    with pytest.raises(ConfigError, match="trim_frames"):
        SceneStep(CurationConfig().with_overrides({"scenes.trim_frames": -1}))


def test_megamind_shots(megamind_candidates):
    # Megamind.avi (271 decoded frames at 23.976 fps) has four shots, checked frame by frame by eye:
    # Roxanne with a man in the background | the man in glasses, medium shot | Roxanne | the man, close-up.
    shots = megamind_candidates["shots"]
    bounds = [(s["shot_index"], s["shot_start_frame"], s["shot_end_frame"]) for s in shots]
    assert [b[0] for b in bounds] == [0, 1, 3]
    # Hard cuts at frames 99, 155 and 201 (frames 98|99, 154|155, 200|201 viewed side by side), trimmed by 3.
    expected = [(0, 96), (102, 152), (204, 271)]
    for (_, start, end), (es, ee) in zip(bounds, expected):
        assert abs(start - es) <= 1 and abs(end - ee) <= 1
    assert all(s["n_shots"] == 4 and s["source_id"] == "megamind" for s in shots)
    # Shot 2 (Roxanne again, 158..198 after trimming = 40 frames) is below the 2 s minimum.
    (rej,) = megamind_candidates["shot_rejections"]
    assert rej["reason"] == "shot_too_short" and rej["item_id"] == "megamind/0/2"
    assert rej["value"] == pytest.approx(40 / 23.976, abs=2 / 23.976) and rej["threshold"] == 2.0


@pytest.fixture(scope="module")
def hard_cut_video(make_face_video):
    """Three shots of one real photo: 60 frames | 65 frames (mirrored, smaller) | 20 frames (too short)."""
    from talkbench.demo import render_portrait

    def frames():
        a = render_portrait("astronaut", "sway", 2.4, face_size=150, size=(320, 240))[0]
        b = render_portrait("astronaut", "zoom", 2.6, face_size=110, size=(320, 240))[0][:, :, ::-1]
        c = render_portrait("astronaut", "nod", 0.8, face_size=100, size=(320, 240))[0]
        return np.concatenate([a, np.ascontiguousarray(b), c])

    return make_face_video("scene_hard_cut.mp4", frames)


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_hard_cut_splits_into_trimmed_shots(hard_cut_video, steps_runner, detector):
    config = CurationConfig().with_overrides({"scenes.detector": detector})
    cuts, n = detect_cuts(hard_cut_video, 25.0, config.scenes)
    assert n == 145 and cuts == [60, 125]
    seg = segment_row(hard_cut_video, "cut")
    shots, rejections = steps_runner([SceneStep(config)], [seg])
    assert [(s["shot_start_frame"], s["shot_end_frame"]) for s in shots] == [(0, 57), (63, 122)]
    (rej,) = rejections
    assert (rej["reason"], rej["item_id"], rej["value"]) == ("shot_too_short", "cut/0/2", pytest.approx(17 / 25))


def test_hard_cut_splits_the_face_track(hard_cut_video, steps_runner):
    """The same photo on both sides of the cut: without shots, IoU tracking could join them; with shots it cannot."""
    from talkbench.curation.faces import FaceStep

    config = CurationConfig()
    shots, _ = steps_runner([SceneStep(config)], [segment_row(hard_cut_video, "cut")])
    candidates, _ = steps_runner([FaceStep(config)], shots)
    spans = sorted((c["shot_index"], c["start_frame"], c["end_frame"]) for c in candidates)
    assert spans[0] == (0, 0, 57) and all(end <= 57 or start >= 63 for _, start, end in spans)
    assert {c["shot_index"] for c in candidates} == {0, 1}
