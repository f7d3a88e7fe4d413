"""The training dataset: batches from real clips, deterministic by index, split rules enforced."""

from __future__ import annotations

import pytest
import torch

from talkbench.errors import ManifestError
from talkbench.manifests import read_rows, write_table
from talkbench.models.data import MotionPairs, StepSampler, load_train_clips


def test_sample_contents_and_determinism(tiny_manifest):
    data = MotionPairs(tiny_manifest, 64, seed=3)
    assert data.identities == ["astronaut", "megamind"]
    item = data[5]
    for key in ("source", "target", "other", "aug"):
        assert item[key].shape == (3, 64, 64)
        assert -1.0 <= item[key].min() and item[key].max() <= 1.0
    assert item["label"] != item["other_label"]  # "other" is always another identity when one exists
    assert not item["other_is_same"]
    assert not torch.equal(item["aug"], item["source"])
    again = MotionPairs(tiny_manifest, 64, seed=3)[5]  # a fresh object (another worker) gives the same sample
    assert all(torch.equal(item[k], again[k]) for k in item)
    other_seed = MotionPairs(tiny_manifest, 64, seed=4)[5]
    assert not all(torch.equal(item[k], other_seed[k]) for k in ("source", "target"))


def test_frames_are_the_real_clip(tiny_manifest):
    from talkbench import media

    data = MotionPairs(tiny_manifest, 64)
    k = [r["clip_id"] for r in data.rows].index("mm-a")
    frames = data.frames(k)
    assert frames.shape == (40, 64, 64, 3)
    direct = media.read_frames(tiny_manifest.parent / "clips/mm-a.mp4")
    assert (frames.astype(int) - direct.astype(int)).__abs__().max() == 0


def test_test_split_is_refused(tiny_manifest, tmp_path):
    rows = read_rows(tiny_manifest, "clips")
    rows[0]["split"] = "test"
    mixed = tmp_path / "mixed.parquet"
    write_table(rows, mixed, "clips")
    assert [r["clip_id"] for r in load_train_clips(mixed)] == sorted(r["clip_id"] for r in rows[1:])
    with pytest.raises(ManifestError, match="refusing to train on test-split clips"):
        load_train_clips(mixed, clip_ids=[rows[0]["clip_id"]])
    for r in rows:
        r["split"] = "test"
    only_test = tmp_path / "test.parquet"
    write_table(rows, only_test, "clips")
    with pytest.raises(ManifestError, match="no clips with split='train'"):
        MotionPairs(only_test, 64)
    rows[0]["split"] = None
    write_table(rows, only_test, "clips")
    with pytest.raises(ManifestError, match="no train/test split"):
        MotionPairs(only_test, 64)


def test_step_sampler_slices_global_batches():
    ranks = [list(StepSampler(2, start_step=3, max_steps=5, rank=r, world_size=2)) for r in range(2)]
    assert ranks[0] == [[12, 13], [16, 17]]
    assert ranks[1] == [[14, 15], [18, 19]]
