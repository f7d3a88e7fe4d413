"""Select (seeded, reproducible, prefers better clips), split (no identity leakage), export (frames, audio, sha256)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from talkbench.curation.config import ExportConfig, SelectConfig, SplitConfig
from talkbench.curation.export import ExportStep, count_frames, crop_geometry, export_clip
from talkbench.curation.select import select_clips
from talkbench.curation.split import assign_split, split_identities
from talkbench.runtime import StepContext


def _row(identity, k, seconds=3.0, yaw=5.0, sharpness=100.0):
    return {"candidate_id": f"{identity}-v{k}/0/0/0", "source_id": f"{identity}-v{k}", "identity_id": identity,
            "start_s": 0.0, "end_s": seconds, "yaw_max": yaw, "pitch_max": 3.0, "roll_max": 2.0,
            "sharpness": sharpness}


def _pool():
    rows = []
    for ident, n in (("id-a", 6), ("id-b", 3), ("id-c", 2), ("id-d", 1)):
        rows += [_row(ident, k, seconds=2.0 + k) for k in range(n)]
    return rows


# ------------------------------------------------------------------------------------------------ select


def test_select_is_reproducible_and_rejects_the_rest_with_reasons():
    rows = _pool()
    config = SelectConfig(max_clips=3, min_clips=2, seed=7)
    chosen, rejected = select_clips(rows, config)
    again, _ = select_clips(list(reversed(rows)), config)  # input order does not matter
    assert [r["candidate_id"] for r in chosen] == [r["candidate_id"] for r in again]
    per_id = Counter(r["identity_id"] for r in chosen)
    assert per_id == {"id-a": 3, "id-b": 3, "id-c": 2}
    reasons = Counter((r["reason"], json.loads(r["detail"])["identity_id"]) for r in rejected)
    assert reasons == {("not_selected", "id-a"): 3, ("identity_too_few_clips", "id-d"): 1}
    too_few = next(r for r in rejected if r["reason"] == "identity_too_few_clips")
    assert (too_few["stage"], too_few["value"], too_few["threshold"]) == ("select", 1.0, 2.0)
    # Nothing is lost: every row is either chosen or rejected.
    assert len(chosen) + len(rejected) == len(rows)


def test_select_prefers_longer_sharper_more_frontal_clips():
    # Five clips of one identity: one long, sharp, frontal clip and four poor ones. Over 200 seeds the good clip is
    # picked far more often than any poor one, but not always (the draw is weighted, not a sort).
    rows = [_row("id-x", 0, seconds=8.0, yaw=2.0, sharpness=200.0)]
    rows += [_row("id-x", k, seconds=2.1, yaw=45.0, sharpness=30.0) for k in range(1, 5)]
    picks = Counter()
    for seed in range(200):
        chosen, _ = select_clips(rows, SelectConfig(max_clips=1, min_clips=1, seed=seed))
        picks[chosen[0]["candidate_id"]] += 1
    assert picks["id-x-v0/0/0/0"] > 150
    assert 0 < sum(v for k, v in picks.items() if k != "id-x-v0/0/0/0") < 50


def test_select_seed_changes_the_choice():
    rows = [_row("id-y", k, seconds=3.0) for k in range(8)]
    choices = {tuple(r["candidate_id"] for r in select_clips(rows, SelectConfig(seed=s))[0]) for s in range(5)}
    assert len(choices) > 1


# ------------------------------------------------------------------------------------------------- split


@pytest.mark.parametrize("n_ids", [2, 3, 7, 20])
def test_split_has_no_identity_leakage_and_a_test_identity(n_ids):
    rows = [_row(f"id-{i:02d}", k) for i in range(n_ids) for k in range(3)]
    out = assign_split(rows, SplitConfig(test_fraction=0.2, seed=3))
    splits_of = {}
    for r in out:
        splits_of.setdefault(r["identity_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values())  # zero leakage
    test_ids = {i for i, s in splits_of.items() if s == {"test"}}
    train_ids = {i for i, s in splits_of.items() if s == {"train"}}
    assert not test_ids & train_ids
    assert len(test_ids) == max(1, round(0.2 * n_ids)) and train_ids
    assert split_identities(splits_of, SplitConfig(test_fraction=0.2, seed=3)) == \
        {i: next(iter(s)) for i, s in splits_of.items()}  # reproducible


def test_split_of_one_identity_is_train():
    assert split_identities(["id-a"], SplitConfig()) == {"id-a": "train"}


# ------------------------------------------------------------------------------------------------ export


@pytest.fixture(scope="module")
def source_video(tmp_path_factory):
    """3 s of the astronaut moving on a 640×360 canvas at 25 fps, with a 440 Hz tone (a real photo, real audio)."""
    import cv2
    from skimage import data

    from talkbench.media import write_video

    photo = data.astronaut()
    frames = []
    for i in range(75):
        m = np.float32([[0.7, 0, 100 + 2 * i], [0, 0.7, -20]])
        frames.append(cv2.warpAffine(photo, m, (640, 360), borderMode=cv2.BORDER_CONSTANT, borderValue=(90, 90, 90)))
    t = np.arange(3 * 16000) / 16000
    path = tmp_path_factory.mktemp("export") / "src.mp4"
    write_video(path, np.stack(frames), 25.0, audio=(0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    return path


def _clip(path, out_dir, **kw):
    row = {"clip_id": "clip-a", "abs_path": str(path), "out_dir": str(out_dir), "fps": 25.0, "start_frame": 10,
           "end_frame": 60, "crop_x0": 200, "crop_y0": 40, "crop_size": 300, "has_audio": True,
           "source_id": "src", "candidate_id": "src/0/0/0"}
    row.update(kw)
    return row


def test_export_writes_checked_h264_with_audio_and_sha(source_video, tmp_path):
    from talkbench.media import probe_json, read_audio, read_frames, sha256_file

    media = export_clip(_clip(source_video, tmp_path), tmp_path, size=256, png_frames=True, wav=True)
    out = tmp_path / media["path"]
    assert media["path"] == "clips/clip-a.mp4" and media["n_frames"] == 50 and media["size"] == 256
    assert count_frames(out) == 50
    assert media["sha256"] == sha256_file(out)
    streams = {s["codec_type"]: s for s in probe_json(out)["streams"]}
    video = streams["video"]
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (256, 256)
    assert streams["audio"]["codec_name"] == "aac" and streams["audio"]["sample_rate"] == "16000"
    audio = read_audio(out)
    assert abs(len(audio) / 16000 - 2.0) < 0.08  # 50 frames at 25 fps
    # The content is the crop of frames 10..59: compare frame 0 of the clip with the source's frame 10, resized.
    import cv2

    src = read_frames(source_video)[10, 40:340, 200:500]
    got = read_frames(out)[0]
    assert np.abs(got.astype(int) - cv2.resize(src, (256, 256), interpolation=cv2.INTER_AREA).astype(int)).mean() < 4
    assert len(list((tmp_path / media["frames_dir"]).glob("*.png"))) == 50
    assert media["wav_path"] == "clips/clip-a.wav" and (tmp_path / media["wav_path"]).exists()
    # Encoding is bit-exact: a second export gives the same file.
    again = export_clip(_clip(source_video, tmp_path), tmp_path, size=256)
    assert again["sha256"] == media["sha256"]


def test_export_pads_a_crop_that_leaves_the_frame(source_video, tmp_path):
    from talkbench.media import read_frames

    (inside, pad) = crop_geometry(-60, 200, 300, 640, 360)
    assert inside == (0, 200, 240, 360) and pad == (60, 0, 0, 140)
    media = export_clip(_clip(source_video, tmp_path, crop_x0=-60, crop_y0=200, has_audio=False), tmp_path, size=256)
    frames = read_frames(tmp_path / media["path"])
    assert frames.shape == (50, 256, 256, 3) and media["has_audio"] is False
    # Left 60/300 and bottom 140/300 of the square are black padding; the rest is the grey/photo content.
    assert frames[:, :, :45].mean() < 6 and frames[:, 140:].mean() < 6
    assert frames[:, :100, 60:].mean() > 40


def test_export_step_rejects_a_clip_past_the_end(source_video, tmp_path):
    step = ExportStep(ExportConfig())
    step.ctx = StepContext(step.name)
    rows = [_clip(source_video, tmp_path), _clip(source_video, tmp_path, clip_id="clip-b", start_frame=60,
                                                 end_frame=90)]
    out = list(step.run(rows))
    assert [r["clip_id"] for r in out] == ["clip-a"]
    (rej,) = step.ctx.rejections
    assert rej["item_id"] == "clip-b" and rej["reason"] == "export_failed"
    assert "expected 30 frames" in json.loads(rej["detail"])["error"]
