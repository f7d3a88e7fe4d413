"""`bench run` gives byte-identical results with the local executor, a local process pool and Ray workers."""

from __future__ import annotations

import pytest

from conftest import PROTO
from talkbench.bench.run import BenchConfig, run_bench


@pytest.mark.slow
@pytest.mark.ray
def test_ray_and_local_give_identical_results(clip_manifest, tmp_path):
    pytest.importorskip("ray")

    def cfg(out, executor, workers):
        # the executors are what is compared: two per-clip metrics keep the workers' model loading short (every
        # metric goes through the same scoring path; test_run.py runs them all)
        return BenchConfig(method="static", task="self-reenact", manifest=str(clip_manifest), out=str(out),
                           protocol=PROTO, quiet=True, executor=executor, workers=workers, metrics=("psnr", "ssim"))

    local = run_bench(cfg(tmp_path / "local", "local", 1))
    import ray

    try:
        remote = run_bench(cfg(tmp_path / "ray", "ray", 2))
    finally:
        ray.shutdown()
    assert (tmp_path / "ray" / "results.parquet").read_bytes() == (tmp_path / "local" / "results.parquet").read_bytes()
    assert remote.summary["metrics"] == local.summary["metrics"]
    assert 10 < local.summary["metrics"]["psnr"]["mean"] < 30  # real PSNR of the static baseline, in both
    # one rank per clip, whatever the worker count: the executor's completion markers are the resume
    assert sorted(p.name for p in (tmp_path / "ray" / "stats" / "clips" / "completions").iterdir()) == [
        "00000", "00001", "00002", "00003"]


@pytest.mark.slow
def test_local_process_pool_gives_identical_results(clip_manifest, tmp_path):
    def cfg(out, workers):
        return BenchConfig(method="static", task="cross-reenact", manifest=str(clip_manifest), out=str(out),
                           protocol=PROTO, quiet=True, workers=workers, seed=1, metrics=("akd_driver",))

    one = run_bench(cfg(tmp_path / "one", 1))
    run_bench(cfg(tmp_path / "two", 2))
    assert (tmp_path / "two" / "results.parquet").read_bytes() == (tmp_path / "one" / "results.parquet").read_bytes()
    # the driver-motion metric ran for real in both (Face Mesh on the astronaut clips)
    assert any(r["metric"] == "akd_driver" and r["value"] is not None for r in one.rows)
