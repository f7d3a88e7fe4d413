"""Filters: unit checks of every rule, then animated real portraits with known answers (scenes → faces → filters)."""

from __future__ import annotations

import numpy as np
import pytest

from talkbench.curation.config import CurationConfig
from talkbench.curation.faces import FaceStep
from talkbench.curation.filters import (AudioPresent, CropInsideFrame, MaxPose, MinDuration, MinFaceSize,
                                        MinSharpness, SingleDominantFace, make_filters)
from talkbench.curation.scenes import SceneStep, segment_row
from talkbench.demo import load_photo, motion_at, render_pair, render_portrait
from talkbench.errors import ConfigError
from talkbench.media import read_frames

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def _row(**kw):
    row = {"candidate_id": "s/0/0/0", "source_id": "s", "start_s": 0.0, "end_s": 3.0, "face_size_median": 300.0,
           "yaw_max": 10.0, "pitch_max": 10.0, "roll_max": 10.0, "second_face_ratio": 0.0, "crop_padded": False,
           "crop_x0": 10, "crop_y0": 10, "crop_size": 500, "frame_width": 960, "frame_height": 720,
           "has_audio": True, "sharpness": 100.0}
    row.update(kw)
    return row


def _verdicts(filt, rows, steps_runner):
    kept, rejections = steps_runner([filt], rows)
    return kept, [(r["reason"], r["value"], r["threshold"]) for r in rejections]


def test_each_rule_records_value_and_threshold(steps_runner):
    cases = [
        (MinDuration(2.0), _row(end_s=1.5), ("too_short", 1.5, 2.0)),
        (MinFaceSize(256), _row(face_size_median=200.0), ("face_too_small", 200.0, 256.0)),
        (MaxPose(60, 60, 60), _row(yaw_max=20.0, roll_max=71.0), ("pose_too_large", 71.0, 60.0)),
        (MaxPose(60, 40, 60), _row(pitch_max=45.0), ("pose_too_large", 45.0, 40.0)),
        (SingleDominantFace(0.5), _row(second_face_ratio=0.9), ("multiple_faces", 0.9, 0.5)),
        (CropInsideFrame("inside"), _row(crop_padded=True, crop_x0=-30), ("crop_outside_frame", 30.0, 0.0)),
        (AudioPresent(), _row(has_audio=False), ("no_audio", 0.0, 1.0)),
        (MinSharpness(50.0), _row(sharpness=20.0), ("too_blurry", 20.0, 50.0)),
    ]
    for filt, bad, expected in cases:
        kept, rejected = _verdicts(filt, [_row(), bad], steps_runner)
        assert len(kept) == 1 and rejected == [expected], type(filt).__name__
    # the pad policy keeps crops that leave the frame (export pads them and records crop_padded)
    assert _verdicts(CropInsideFrame("pad"), [_row(crop_padded=True, crop_x0=-30)], steps_runner)[1] == []
    with pytest.raises(ConfigError, match="unknown crop policy 'clip'"):
        CropInsideFrame("clip")


def test_make_filters_follows_the_config():
    names = [type(f).__name__ for f in make_filters(CurationConfig())]
    assert names == ["MinDuration", "MinFaceSize", "MaxPose", "SingleDominantFace", "CropInsideFrame", "AudioPresent"]
    cfg = CurationConfig().with_overrides({"filters.require_audio": False, "filters.min_sharpness": 30.0})
    names = [type(f).__name__ for f in make_filters(cfg)]
    assert "AudioPresent" not in names and names[-1] == "MinSharpness"


# ----------------------------------------------------------------------------------------------- real portraits


def _curate(path, steps_runner, config=None):
    config = config or CurationConfig()
    steps = [SceneStep(config), FaceStep(config), *make_filters(config)]
    return steps_runner(steps, [segment_row(path, path.stem)])


def test_moving_portrait_passes_every_rule(make_face_video, steps_runner):
    path = make_face_video("astro_pass.mp4", lambda: render_portrait("astronaut", "sway", 2.4)[0])
    kept, rejections = _curate(path, steps_runner)
    assert rejections == []
    (clip,) = kept
    assert (clip["start_frame"], clip["end_frame"], clip["start_s"], clip["end_s"]) == (0, 60, 0.0, 2.4)
    assert len(clip["samples"]) == 12 and [s["frame"] for s in clip["samples"][:3]] == [2, 7, 12]
    # the face box of the photo (measured once) was scaled to 300 px; sway adds no scale change
    assert clip["face_size_median"] == pytest.approx(300, rel=0.08)
    assert clip["yaw_max"] < 10 and clip["pitch_max"] < 20 and clip["roll_max"] < 10
    assert clip["second_face_ratio"] == 0.0 and not clip["crop_padded"]
    # crop: the union of boxes moving ±20 px × ±10 px, enlarged 0.4 × side on each side
    assert clip["crop_size"] == pytest.approx((300 + 40) * 1.8, rel=0.1)
    assert clip["crop_x0"] + clip["crop_size"] / 2 == pytest.approx(480, abs=25)
    assert clip["crop_y0"] + clip["crop_size"] / 2 == pytest.approx(360, abs=25)


def test_small_face_is_rejected_as_too_small(make_face_video, steps_runner):
    path = make_face_video("astro_small.mp4", lambda: render_portrait("astronaut", "sway", 2.4, face_size=150,
                                                                       size=(640, 480))[0])
    kept, rejections = _curate(path, steps_runner)
    assert kept == []
    (rej,) = rejections
    assert (rej["stage"], rej["reason"], rej["threshold"]) == ("MinFaceSize", "face_too_small", 256.0)
    assert rej["value"] == pytest.approx(150, rel=0.1)


def test_face_rolled_past_60_degrees_is_rejected_and_roll_tracks_the_rotation(make_face_video, steps_runner):
    path = make_face_video("astro_roll.mp4", lambda: render_portrait("astronaut", "roll_ramp", 3.4,
                                                                      face_size=360)[0])
    config = CurationConfig()
    shots, _ = steps_runner([SceneStep(config)], [segment_row(path, "roll")])
    (cand,) = steps_runner([FaceStep(config)], shots)[0]
    upright = cand["samples"][0]["roll"] - motion_at("roll_ramp", cand["samples"][0]["frame"] / 25)["rotation"]
    assert abs(upright) < 6  # the astronaut's own head tilt
    for s in cand["samples"]:
        applied = motion_at("roll_ramp", s["frame"] / 25)["rotation"]
        assert s["roll"] - upright == pytest.approx(applied, abs=5), s["frame"]
    assert cand["roll_max"] > 66 and cand["yaw_max"] < 10
    kept, rejections = steps_runner(make_filters(config), [cand])
    assert kept == [] and [(r["reason"], r["threshold"]) for r in rejections] == [("pose_too_large", 60.0)]
    assert rejections[0]["value"] == pytest.approx(cand["roll_max"])


def test_two_equal_faces_are_rejected_as_multiple_faces(make_face_video, steps_runner):
    if load_photo("person_b") is None:
        pytest.skip("insightface's t1.jpg is not installed")
    path = make_face_video("two_faces.mp4", lambda: render_pair("person_b", "person_c", 2.4))
    kept, rejections = _curate(path, steps_runner)
    assert kept == [] and len(rejections) == 2
    for rej in rejections:
        assert rej["reason"] == "multiple_faces" and rej["value"] == pytest.approx(1.0, abs=0.15)


def test_missing_audio_is_rejected_and_can_be_allowed(make_face_video, steps_runner):
    path = make_face_video("astro_silent.mp4", lambda: render_portrait("astronaut", "zoom", 2.4)[0], audio=False)
    kept, rejections = _curate(path, steps_runner)
    assert kept == [] and [(r["reason"], r["stage"]) for r in rejections] == [("no_audio", "AudioPresent")]
    kept, rejections = _curate(path, steps_runner, CurationConfig().with_overrides({"filters.require_audio": False}))
    assert len(kept) == 1 and rejections == []


def test_street_scene_without_faces_is_rejected_as_no_face(make_face_video, steps_runner):
    path = make_face_video("street.mp4", lambda: read_frames(VTEST, duration=2.4), audio=False, fps=10.0)
    kept, rejections = _curate(path, steps_runner)
    assert kept == []
    assert [(r["stage"], r["item_id"], r["reason"]) for r in rejections] == [("FaceStep", "street/0/0", "no_face")]
    assert np.isfinite(rejections[0]["value"])


def test_blurred_face_has_lower_sharpness_and_the_optional_floor_rejects_it(make_face_video, steps_runner):
    import cv2

    def frames(sigma):
        clip = render_portrait("astronaut", "sway", 2.2, face_size=270, size=(480, 480))[0]
        return clip if sigma == 0 else np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in clip])

    config = CurationConfig().with_overrides({"filters.min_sharpness": 0.0})
    sharp_path = make_face_video("astro_sharp.mp4", lambda: frames(0))
    blur_path = make_face_video("astro_blur.mp4", lambda: frames(3.0))
    (sharp,), _ = _curate(sharp_path, steps_runner, config)
    (blurred,), _ = _curate(blur_path, steps_runner, config)
    assert all(s["sharpness"] > 0 for s in sharp["samples"])
    assert blurred["sharpness"] < 0.5 * sharp["sharpness"]
    floor = (sharp["sharpness"] + blurred["sharpness"]) / 2
    kept, rejections = steps_runner(make_filters(config.with_overrides({"filters.min_sharpness": floor})),
                                    [sharp, blurred])
    assert [k["source_id"] for k in kept] == ["astro_sharp"]
    assert [(r["reason"], r["value"]) for r in rejections] == [("too_blurry", pytest.approx(blurred["sharpness"]))]
