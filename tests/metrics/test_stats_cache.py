"""Reference-statistics cache: hit on the same key, miss on any changed key part, corrupt files recomputed."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch

from talkbench.metrics.frechet import FVD, frechet_distance, gaussian_stats
from talkbench.metrics.stats_cache import (Lookup, ReferenceStats, ReferenceStatsCache, StatsKey, clip_set_digest,
                                           default_cache_dir)


def hdtf_clip_ids():
    """Real clip names: the HDTF video list's first column."""
    with open("/work/shared/data/hdtf/RD_video_url.txt") as f:
        return [line.split()[0] for line in f if line.strip()]


def fvd_stats(seed=0):
    rng = np.random.default_rng(seed)
    feats = np.maximum(rng.normal(size=(300, 400)) @ rng.normal(size=(400, 400)) * 0.05, 0)
    mu, sigma = gaussian_stats(feats, ddof=0)
    return ReferenceStats(mu, sigma, 300)


def key(**changes):
    base = StatsKey(manifest_sha="a" * 64, split="test", clip_set=clip_set_digest(hdtf_clip_ids()),
                    protocol_digest="p1", metric="fvd")
    return dataclasses.replace(base, **changes)


def test_round_trip_is_exact_and_npz_without_pickle(tmp_path):
    cache = ReferenceStatsCache(tmp_path)
    stats = fvd_stats()
    assert cache.load(key()).status == "miss"
    path = cache.save(key(), stats)
    with np.load(path, allow_pickle=False) as z:  # readable without pickle
        assert sorted(z.files) == ["key", "mu", "n", "sigma"]
    got = cache.load(key())
    assert got.status == "hit" and got.stats.n == 300
    assert np.array_equal(got.stats.mu, stats.mu) and np.array_equal(got.stats.sigma, stats.sigma)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary behind


@pytest.mark.parametrize("field,value", [("manifest_sha", "b" * 64), ("split", "val"), ("protocol_digest", "p2"),
                                         ("metric", "fid")])
def test_any_changed_key_part_misses(tmp_path, field, value):
    cache = ReferenceStatsCache(tmp_path)
    cache.save(key(), fvd_stats())
    assert cache.load(key(**{field: value})).status == "miss"
    assert cache.load(key()).status == "hit"


def test_clip_set_is_order_free_but_membership_sensitive(tmp_path):
    ids = hdtf_clip_ids()
    assert clip_set_digest(ids) == clip_set_digest(list(reversed(ids)))
    cache = ReferenceStatsCache(tmp_path)
    cache.save(key(), fvd_stats())
    assert cache.load(key(clip_set=clip_set_digest(ids[:-1]))).status == "miss"


def corruptions(path, k):
    good = path.read_bytes()
    yield "truncated", lambda: path.write_bytes(good[: len(good) // 2])
    yield "not a zip", lambda: path.write_bytes(b"hello")
    s = fvd_stats()
    kj = np.array(json.dumps(dataclasses.asdict(k)))
    yield "float32", lambda: np.savez(path, mu=s.mu.astype(np.float32), sigma=s.sigma, n=np.int64(3), key=kj)
    yield "shape", lambda: np.savez(path, mu=s.mu[:10], sigma=s.sigma, n=np.int64(3), key=kj)
    yield "nan", lambda: np.savez(path, mu=s.mu * np.nan, sigma=s.sigma, n=np.int64(3), key=kj)
    other = np.array(json.dumps(dataclasses.asdict(dataclasses.replace(k, split="val"))))
    yield "other key", lambda: np.savez(path, mu=s.mu, sigma=s.sigma, n=np.int64(3), key=other)
    yield "pickled object", lambda: np.savez(path, mu=np.array([{"a": 1}], dtype=object), sigma=s.sigma,
                                             n=np.int64(3), key=kj)


def test_corrupt_files_are_reported_removed_and_recomputed(tmp_path, caplog):
    cache = ReferenceStatsCache(tmp_path)
    path = cache.save(key(), fvd_stats())
    for name, corrupt in list(corruptions(path, key())):
        corrupt()
        got = cache.load(key())
        assert got.status == "corrupt" and got.stats is None, name
        assert "recomputing" in got.reason and not path.exists(), name
        cache.save(key(), fvd_stats())  # the recompute
        assert cache.load(key()).status == "hit"
    assert "rejected" in caplog.text


def test_save_refuses_wrong_shapes_and_key_parts(tmp_path):
    with pytest.raises(ValueError, match="400"):
        ReferenceStatsCache(tmp_path).save(key(), ReferenceStats(np.zeros(3), np.eye(3), 10))
    with pytest.raises(ValueError, match="unknown set-level metric 'kid'"):
        key(metric="kid")
    with pytest.raises(ValueError, match="split"):
        key(split="")


def test_default_locations(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "cache" / "reference_stats"
    assert default_cache_dir(tmp_path / "run" / "cache") == tmp_path / "run" / "cache" / "reference_stats"


def test_metric_with_cached_real_stats_equals_accumulating_them(tmp_path):
    rng = np.random.default_rng(1)
    real = torch.from_numpy(np.maximum(rng.normal(size=(60, 400)), 0))
    fake = torch.from_numpy(np.maximum(rng.normal(0.1, 1.1, size=(60, 400)), 0))
    first = FVD(extractor=torch.nn.Identity())
    first.update_features(real, True)
    first.update_features(fake, False)
    expected = float(first.compute())
    cache = ReferenceStatsCache(tmp_path)
    cache.save(key(), ReferenceStats(*first.stats("real")))
    second = FVD(extractor=torch.nn.Identity())
    hit = cache.load(key())
    second.set_real_stats(hit.stats.mu, hit.stats.sigma, hit.stats.n)
    second.update_features(fake, False)
    assert float(second.compute()) == pytest.approx(expected, rel=1e-12)
    direct = frechet_distance(*gaussian_stats(real.numpy(), 0), *gaussian_stats(fake.numpy(), 0))
    assert expected == pytest.approx(direct, rel=1e-9)
    clone = pickle.loads(pickle.dumps(second))
    assert float(clone.compute()) == pytest.approx(expected, rel=1e-12)
    from talkbench.errors import ConfigError

    with pytest.raises(ConfigError, match="from the cache"):
        second.update_features(real, True)
    with pytest.raises(ConfigError, match="already added"):
        first.set_real_stats(hit.stats.mu, hit.stats.sigma, hit.stats.n)
    assert isinstance(cache.load(key()), Lookup)


def test_reference_clip_set_follows_the_ground_truth_frames_used():
    from talkbench.metrics.stats_cache import reference_clip_set, reference_keys

    ids = hdtf_clip_ids()[:4]
    items = [(cid, 1, 75) for cid in ids]
    base = reference_clip_set(items)
    assert reference_clip_set(items[::-1]) == base  # order-free
    assert reference_clip_set(items[:3]) != base  # another clip set
    assert reference_clip_set([(ids[0], 0, 75)] + items[1:]) != base  # the source frame scored or not
    assert reference_clip_set([(ids[0], 1, 60)] + items[1:]) != base  # a shorter generated video cuts the reference
    keys = reference_keys("a" * 64, "test", base, "p1", ["psnr", "fid", "fvd"])
    assert sorted(keys) == ["fid", "fvd"] and keys["fvd"].clip_set == base and keys["fid"].metric == "fid"
