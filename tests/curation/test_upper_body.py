"""The upper-body curation profile on real photos (t1.jpg's person_b, the astronaut), animated by demo_upper.

Short videos (1.2 s) keep MediaPipe Pose/Hands affordable; the profile's duration floor is lowered to match.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from talkbench.curation.config import CurationConfig
from talkbench.curation.faces import FaceStep
from talkbench.curation.filters import make_filters
from talkbench.curation.scenes import SceneStep, segment_row
from talkbench.curation.upper_body import (PROFILES, BodyStep, PortraitExportStep, apply_profile, crop_portrait,
                                           portrait_crop, upper_body_steps)
from talkbench.demo_upper import render_upper
from talkbench.errors import ConfigError
from talkbench.media import read_frames, video_size, write_video

pytest.importorskip("mediapipe")
pytest.importorskip("insightface")  # t1.jpg


def run_steps(steps, rows):
    """Run steps in sequence like an executor rank does; returns (rows out, every rejection)."""
    from talkbench.runtime import StepContext

    rejections = []
    for step in steps:
        step.ctx = StepContext(step.name)
        rows = list(step.run(rows))
        rejections += step.ctx.rejections
    return rows, rejections

SECONDS = 1.2


@pytest.fixture(scope="module")
def profile_config() -> CurationConfig:
    return apply_profile(CurationConfig(), "upper-body").with_overrides({"filters.min_duration": 0.6})


@pytest.fixture(scope="module")
def curated(tmp_path_factory, profile_config):
    """Every demo portrait through scenes → faces → standard filters → the profile's step and filters."""
    folder = tmp_path_factory.mktemp("upper-body")
    rows = []
    for name in ("person_b", "astronaut", "astronaut_head", "person_b_wide"):
        frames, audio, _ = render_upper(name, SECONDS)
        path = write_video(folder / f"{name}.mp4", frames, 25.0, audio=audio)
        rows.append(segment_row(path, name))
    steps = [SceneStep(profile_config), FaceStep(profile_config), *make_filters(profile_config),
             *upper_body_steps(profile_config)]
    kept, rejections = run_steps(steps, rows)
    return folder, kept, {r["source_id"]: r for r in rejections}


def test_profile_is_config_overrides_and_default_is_unchanged():
    default = CurationConfig()
    assert upper_body_steps(default) == []
    assert apply_profile(default, "default") == default
    ub = apply_profile(default, "upper-body")
    assert ub.upper_body.enabled and ub.filters.min_face_size == PROFILES["upper-body"]["filters.min_face_size"]
    # the profile changes the hash (new ids); the default hash does not see the disabled section
    assert ub.hash() != default.hash()
    assert default.hash() == "ba9e8125e525b9fd"  # main's default hash before the profile existed
    with pytest.raises(ValueError, match="unknown profile 'upper'; choose from"):
        apply_profile(default, "upper")
    with pytest.raises(ValueError, match="2:3"):
        CurationConfig().with_overrides({"upper_body.height": 700})


def test_portrait_crop_is_two_by_three_and_holds_the_content():
    cfg = apply_profile(CurationConfig(), "upper-body").upper_body
    face = [200.0, 80.0, 390.0, 270.0]
    points = np.array([[130.0, 300.0], [350.0, 240.0], [575.0, 390.0]])  # shoulders, a raised hand
    x0, y0, w, h = portrait_crop(face, points, 190.0, cfg)
    assert abs(h / w - 1.5) < 0.01
    assert x0 <= 130 and x0 + w >= 575 and y0 <= 80 - 0.3 * 190 and y0 + h >= 390


def test_person_with_torso_and_hands_is_kept_with_its_fractions(curated, profile_config):
    _, kept, rejections = curated
    assert [r["source_id"] for r in kept] == ["person_b"], rejections
    row = kept[0]
    assert row["torso_fraction"] == 1.0 and row["hands_fraction"] >= 0.8
    assert abs(row["crop_height"] / row["crop_size"] - 1.5) < 0.01
    assert row["crop_outside"] <= profile_config.upper_body.max_outside


def test_clip_without_hands_records_the_fraction_and_is_rejected(curated, profile_config):
    rej = curated[2]["astronaut"]
    assert rej["reason"] == "too_few_hand_frames" and rej["stage"] == "HandsVisible"
    assert rej["value"] == 0.0 and rej["threshold"] == profile_config.upper_body.min_hands_fraction
    # the same clip passes when the threshold allows no hands: the value, not a default, decided
    relaxed = profile_config.with_overrides({"upper_body.min_hands_fraction": 0.0})
    assert [s for s in upper_body_steps(relaxed) if s.name == "HandsVisible"][0].filter(
        {"hands_fraction": rej["value"]}) is True


def test_head_only_and_landscape_inputs_are_rejected_with_a_reason(curated, profile_config):
    rejections = curated[2]
    head = rejections["astronaut_head"]
    assert head["reason"] == "no_torso" and head["value"] < profile_config.upper_body.min_torso_fraction
    wide = rejections["person_b_wide"]
    assert wide["reason"] == "portrait_crop_outside_frame"
    assert wide["value"] > 0.3 and wide["threshold"] == profile_config.upper_body.max_outside


def test_export_writes_512x768_and_256x384(curated, profile_config):
    folder, kept, _ = curated
    row = {**kept[0], "clip_id": "clip-a", "out_dir": str(folder / "out")}
    step = PortraitExportStep(profile_config.upper_body)
    out, rejections = run_steps([step], [row])
    assert not rejections
    media = out[0]
    assert (media["size"], media["height"]) == (512, 768)
    assert video_size(folder / "out" / media["path"]) == (512, 768)
    assert video_size(folder / "out" / media["path_small"]) == (256, 384)
    assert media["n_frames"] == row["end_frame"] - row["start_frame"]
    # the export is the crop of the source: the crop box resized (not a squeezed full frame)
    import cv2

    src = read_frames(row["abs_path"])[row["start_frame"]]
    x0, y0, w, h = row["crop_x0"], row["crop_y0"], row["crop_size"], row["crop_height"]
    expect = cv2.resize(crop_portrait(src, x0, y0, w, h), (256, 384), interpolation=cv2.INTER_AREA).astype(float)
    got = read_frames(folder / "out" / media["path_small"], duration=0.04)[0].astype(float)
    squeezed = cv2.resize(src, (256, 384), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(got - expect).mean() < 6 < np.abs(got - squeezed).mean()


def test_clip_schema_takes_the_profile_columns(curated):
    from talkbench.manifests.io import to_table

    _, kept, _ = curated
    row = {k: kept[0].get(k) for k in ("crop_size", "crop_height", "torso_fraction", "hands_fraction")}
    table = to_table([{"clip_id": "c", "source_id": "s", **row, "height": 768, "path_small": "clips/c.256x384.mp4"}],
                     "clips")
    assert table.schema.field("crop_height").type == pa.int32()
    with pytest.raises(Exception):
        to_table([{"clip_id": "c", "source_id": "s", "hands_fraction": "many"}], "clips")


def test_curate_cli_refuses_an_unknown_profile(tmp_path):
    from talkbench.cli.curate import _load_config

    with pytest.raises(ConfigError, match="unknown profile 'torso'; choose from"):
        _load_config(None, [], "torso")
    config = _load_config(None, ["upper_body.min_hands_fraction=0.5"], "upper-body")
    assert config.upper_body.enabled and config.upper_body.min_hands_fraction == 0.5


def test_body_step_only_counts_hands_of_the_tracked_person():
    step = BodyStep(apply_profile(CurationConfig(), "upper-body").upper_body)
    frames, _, truth = render_upper("person_b", 0.08)
    far = step.measure(frames[0], np.array([10.0, 10.0]), 40.0)  # a "face" far from every hand
    near = step.measure(frames[0], truth["face_centre"], float(truth["face_size"]))
    assert far["hands"] == [] and len(near["hands"]) >= 1 and near["torso"]


# ----------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`curate build-manifest --profile upper-body` then `talkbench extract-targets`, as a user types them."""
    from talkbench.cli import curate
    from talkbench.cli.main import main as talkbench_main
    from talkbench.demo_upper import make_upper_demo

    root = tmp_path_factory.mktemp("upper-e2e")
    sources = make_upper_demo(root / "material", seconds=SECONDS, names=["upper_person_b_a.mp4", "upper_wide.mp4"])
    code = curate.main(["build-manifest", str(sources), "--out", str(root / "curated"), "--profile", "upper-body",
                        "--set", "filters.min_duration=0.6", "--set", "select.min_clips=1", "--quiet"])
    assert code == 0
    manifest = root / "curated" / "clips.parquet"
    for out in ("targets", "targets-again"):
        assert talkbench_main(["extract-targets", "--profile", "upper-body", "--manifest", str(manifest), "--out",
                               str(root / out), "--set", "upper_body.expression_components=4", "--quiet"]) == 0
    return root


@pytest.mark.slow
def test_build_manifest_and_extract_targets_end_to_end(built):
    from talkbench.manifests.io import read_rows, read_table
    from talkbench.manifests.targets import TARGET_TABLES, load_targets

    clips = read_rows(built / "curated" / "clips.parquet", "clips")
    assert len(clips) == 1 and clips[0]["source_id"].startswith("upper_person_b_a")
    clip = clips[0]
    assert (clip["size"], clip["height"]) == (512, 768) and clip["split"] == "train"
    assert video_size(built / "curated" / clip["path_small"]) == (256, 384)
    assert clip["hands_fraction"] >= 0.8 and clip["torso_fraction"] == 1.0
    reasons = {r["reason"]: r for r in read_rows(built / "curated" / "rejections.parquet", "rejections")}
    assert reasons["portrait_crop_outside_frame"]["value"] > reasons["portrait_crop_outside_frame"]["threshold"]
    # every target table validates against its schema, and a rerun writes the same bytes
    for name in TARGET_TABLES:
        read_table(built / "targets" / f"{name}.parquet", name, allow_newer_columns=False)
        assert (built / "targets" / f"{name}.parquet").read_bytes() == \
            (built / "targets-again" / f"{name}.parquet").read_bytes(), name
    arrays = load_targets(built / "targets", clip["clip_id"])
    t = clip["n_frames"]
    assert arrays["expression"].shape == (t, 4) and arrays["pose6"].shape == (t, 6)
    assert arrays["body"].shape == (t, 25, 3) and arrays["hands"].shape == (t, 2, 21, 3)
    assert arrays["expression_valid"].all() and arrays["pose_valid"].mean() == 1.0
    assert arrays["hand_present"].any(1).mean() > 0.8
    # the exported clip shows the known motion: the hand lifts on stressed syllables (in crop pixels / width)
    truth = np.load(built / "material" / "upper_person_b_a.npz")
    slot = int(np.argmax(arrays["hand_present"].sum(0)))
    seen = arrays["hand_present"][:, slot]
    hand_y = arrays["hands"][seen, slot, :, 1].mean(1)
    assert np.corrcoef(hand_y, truth["hand_dy"][: t][seen])[0, 1] > 0.9
    # yaw/pitch/roll are radians: the applied ±5° roll stays well inside ±0.5 rad
    assert np.abs(arrays["pose6"][:, 2] - np.median(arrays["pose6"][:, 2])).max() < 0.5


def test_extract_targets_refuses_a_manifest_without_a_train_clip(tmp_path):
    from talkbench.curation.targets import extract_targets
    from talkbench.errors import ManifestError
    from talkbench.manifests.io import write_table

    video = write_video(tmp_path / "clips" / "c.mp4", np.zeros((3, 64, 64, 3), np.uint8), 25.0)
    write_table([{"clip_id": "c", "source_id": "s", "path": "clips/c.mp4", "split": "test"}],
                tmp_path / "clips.parquet", "clips")
    with pytest.raises(ManifestError, match="no clip in the 'train' split"):
        extract_targets(tmp_path / "clips.parquet", tmp_path / "targets", apply_profile(
            CurationConfig(), "upper-body").upper_body)
    assert video.exists() and not (tmp_path / "targets").exists()
