"""Tasks, methods and the cross-reenactment pairing rule."""

from __future__ import annotations

import pytest

from talkbench.bench.methods import make_method, method_table
from talkbench.bench.tasks import TASKS, cross_pairs, get_task, make_jobs
from talkbench.errors import ConfigError


def test_unknown_task_lists_choices():
    with pytest.raises(ValueError, match=r"unknown task 'selfie'; choose from \['audio-driven', 'cross-reenact'"):
        get_task("selfie")


def test_task_metric_sets():
    assert TASKS["self-reenact"].metrics == ("psnr", "ssim", "lpips", "csim", "akd", "aed", "fid", "fvd")
    assert set(TASKS["upper-body"].metrics) == set(TASKS["self-reenact"].metrics) | {"hkc"}
    assert TASKS["upper-body"].experimental
    audio = TASKS["audio-driven"]
    assert {"sync_c", "sync_d", "av_offset", "diversity", "psnr_vs_gt", "ssim_vs_gt", "lpips_vs_gt"} <= set(audio.metrics)
    assert audio.evaluator_metrics()[:3] == ("psnr", "ssim", "lpips")
    assert audio.result_name("psnr") == "psnr_vs_gt" and audio.row_extra("psnr") == {"compared_with": "ground truth"}
    cross = TASKS["cross-reenact"]
    assert cross.per_clip_metrics() == ("csim", "akd_driver") and cross.set_metrics() == ("fid", "fvd")


def _clips(n_ids=5, per_id=3):
    return [{"clip_id": f"clip-{i:02d}-{j}", "identity_id": f"id{i}", "path": f"clips/{i}-{j}.mp4"}
            for i in range(n_ids) for j in range(per_id)]


def test_cross_pairs_other_identity_deterministic_and_prefix_stable():
    clips = _clips()
    ident = {c["clip_id"]: c["identity_id"] for c in clips}
    pairs = cross_pairs(clips, seed=0)
    assert sorted(pairs) == sorted(ident)
    assert all(ident[d] != ident[s] for d, s in pairs.items())
    assert pairs == cross_pairs(list(reversed(clips)), seed=0)  # input order does not matter
    assert pairs != cross_pairs(clips, seed=1)  # the seed does
    from pathlib import Path

    jobs = make_jobs(TASKS["cross-reenact"], clips, Path("/data"), seed=0, limit=4)
    assert [j["clip_id"] for j in jobs] == sorted(ident)[:4]
    assert all(j["source_clip_id"] == pairs[j["clip_id"]] for j in jobs)
    assert jobs[0]["source_path"].endswith(clips[[c["clip_id"] for c in clips].index(jobs[0]["source_clip_id"])]["path"])


def test_cross_pairs_needs_two_identities():
    with pytest.raises(ConfigError, match="at least 2 identities"):
        cross_pairs(_clips(n_ids=1), seed=0)


def test_frame_skip_rule_is_the_tasks():
    task = TASKS["self-reenact"]
    assert task.scored_frames({"clip_id": "a", "source_clip_id": "a"}, 20) == 1  # frame 0 is the input
    assert task.scored_frames({"clip_id": "a", "source_clip_id": "a"}, 1) == 0
    assert TASKS["cross-reenact"].scored_frames({"clip_id": "a", "source_clip_id": "b"}, 20) == 0


def test_method_registry(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown method 'sadtalker'; choose from \['folder:PATH', 'gt', 'ours', 'static'\]"):
        make_method("sadtalker")
    with pytest.raises(ConfigError, match="unknown method 'folder'"):
        make_method("folder")
    with pytest.raises(ConfigError, match="^no checkpoint given"):
        make_method("ours")
    with pytest.raises(ConfigError, match="is not a folder"):
        make_method(f"folder:{tmp_path / 'nope'}")
    assert make_method(f"folder:{tmp_path}").name == f"folder:{tmp_path.name}"
    with pytest.raises(ConfigError, match="does not support task 'cross-reenact'"):
        make_method("gt").check_task("cross-reenact")
    table = {r["method"]: r["tasks"] for r in method_table()}
    assert table["static"] == ["self-reenact", "cross-reenact", "audio-driven", "upper-body"]
    assert "audio-driven" in table["ours"]  # an audio2motion checkpoint makes ours speech-driven
