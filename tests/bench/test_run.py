"""`bench run` orchestration on real clips (Megamind, astronaut + espeak-ng speech) with a stand-in evaluator.

The stand-in (bench_fake_metrics) has the Evaluator API of talkbench.metrics.evaluate; PSNR in it is the real
formula, so the gt / static values asserted here are real numbers. Metric numerics are tested in tests/metrics.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import FAKE
from talkbench.bench.run import BenchConfig, run_bench
from talkbench.cli.bench import main
from talkbench.manifests import read_rows
from talkbench.media import probe_json, read_frames, write_video

PROTO = "stand-in-64"


def cfg(manifest, out, method="gt", task="self-reenact", **kw):
    return BenchConfig(method=method, task=task, manifest=str(manifest), out=str(out), protocol=PROTO,
                       evaluator=FAKE, quiet=True, n_boot=200, **kw)


@pytest.fixture(scope="module")
def gt_run(clip_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("gt_run")
    return out, run_bench(cfg(clip_manifest, out))


def test_gt_run_outputs(gt_run):
    out, result = gt_run
    rows = read_rows(out / "results.parquet", "results")
    clip_rows = [r for r in rows if r["clip_id"] is not None]
    assert {r["clip_id"] for r in clip_rows} == {"c-as-0", "c-as-1", "c-mm-0", "c-mm-1"}  # train clip left out
    assert len(clip_rows) == 4 * 6 and len(rows) == 4 * 6 + 2
    assert {r["protocol_id"] for r in rows} == {PROTO} and all(r["protocol_standard"] for r in rows)
    assert {(r["method"], r["task"], r["split"], r["talkbench_version"]) for r in rows} == {
        ("gt", "self-reenact", "test", "0.1.0")}
    psnr = [r for r in clip_rows if r["metric"] == "psnr"]
    assert all(r["value"] == float("inf") and r["n"] == 19 for r in psnr)  # frames 1..19 scored, identical
    assert json.loads(psnr[0]["extra"])["scored_frames"] == "1..19"
    lpips = [r for r in clip_rows if r["metric"] == "lpips"]
    assert all(r["value"] is None and r["null_reason"] == "missing_weights" for r in lpips)
    fid = next(r for r in rows if r["metric"] == "fid")
    assert fid["clip_id"] is None and fid["n"] == 4 and fid["value"] == pytest.approx(0.0, abs=1e-3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["psnr"]["mean"] == "inf"  # JSON has no inf: written as a string
    assert summary["metrics"]["lpips"]["null_reasons"] == {"missing_weights": 4}
    assert summary["missing_weights"] == {"lpips": "talkbench weights fetch lpips-alex"}
    assert summary["n_clips"] == summary["n_scored"] == 4
    video = out / "videos" / "c-as-0.mp4"
    kinds = sorted(s["codec_type"] for s in probe_json(video)["streams"])
    assert kinds == ["audio", "video"]  # the clip's audio is muxed
    assert read_frames(video).shape == (20, 64, 64, 3)


def test_rerun_skips_finished_clips_and_gives_identical_results(gt_run, clip_manifest):
    out, _ = gt_run
    before = (out / "results.parquet").read_bytes()
    (out / "clips" / "c-mm-1.json").unlink()  # as if the run had been killed before this clip finished
    shutil.rmtree(out / "stats")
    result = run_bench(cfg(clip_manifest, out))
    assert result.n_cached == 3
    assert (out / "results.parquet").read_bytes() == before


def test_static_baseline_scores_and_bootstrap(clip_manifest, tmp_path):
    result = run_bench(cfg(clip_manifest, tmp_path, method="static"))
    rows = [r for r in result.rows if r["metric"] == "psnr"]
    # static repeats frame 0: its PSNR against frames 1..19 is finite and far below gt's inf
    values = {r["clip_id"]: r["value"] for r in rows}
    assert all(10 < v < 40 for v in values.values())
    m = result.summary["metrics"]["psnr"]
    assert m["mean"] == pytest.approx(np.mean(list(values.values())))
    assert m["ci_low"] <= m["mean"] <= m["ci_high"]
    csim = result.summary["metrics"]["csim"]
    assert csim["mean"] == pytest.approx(1.0)  # the stand-in CSIM compares with the source: identical frames
    fid = next(r for r in result.rows if r["metric"] == "fid")
    assert fid["value"] > 1.0


def test_cross_and_audio_tasks_label_their_metrics(clip_manifest, tmp_path, capsys):
    cross = run_bench(cfg(clip_manifest, tmp_path / "cross", method="static", task="cross-reenact", seed=3))
    # `bench pairs` gives an external method the same pairing the run used
    assert main(["pairs", "--manifest", str(clip_manifest), "--seed", "3", "--out", str(tmp_path / "pairs.csv")]) == 0
    import csv

    pairs = {r["clip_id"]: r["source_clip_id"] for r in csv.DictReader(open(tmp_path / "pairs.csv"))}
    assert pairs == {r["clip_id"]: json.loads(r["extra"])["source_clip_id"] for r in cross.rows
                     if r["metric"] == "csim"}
    akd = [r for r in cross.rows if r["metric"] == "akd_driver"]
    assert len(akd) == 4
    for r in akd:
        extra = json.loads(r["extra"])
        assert extra["compared_with"] == "driver" and "inter-ocular" in extra["normalisation"]
        assert extra["source_clip_id"][:4] != r["clip_id"][:4]  # another identity (c-as vs c-mm)
        assert "scored_frames" not in extra  # the source is not a frame of the driver: every frame is scored
        assert extra["frames"] == 20
    # Face Mesh finds the astronaut in the 64 px frames: a static video scores the driver's own (non-zero) motion
    astronaut = next(r for r in akd if r["clip_id"] == "c-as-0")
    assert astronaut["value"] is not None and 0.01 < astronaut["value"] < 1.0
    audio = run_bench(cfg(clip_manifest, tmp_path / "audio", method="gt", task="audio-driven"))
    names = {r["metric"] for r in audio.rows}
    assert {"psnr_vs_gt", "sync_c", "fid"} <= names and "psnr" not in names
    psnr = [r for r in audio.rows if r["metric"] == "psnr_vs_gt"]
    assert all(json.loads(r["extra"])["compared_with"] == "ground truth" for r in psnr)


def _write_outputs(src_run, folder, clip_manifest):
    """External-method outputs in every layout the folder policy covers, made from real clips."""
    folder.mkdir()
    clips = clip_manifest.parent / "clips"
    # c-as-0: a 128 px video at 30 fps -> resampled to 25 fps and 64 px, recorded
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clips / "c-as-0.mp4"), "-vf", "fps=30,scale=128:128",
                    str(folder / "c-as-0.mp4")], check=True)
    # c-as-1: PNG frames
    from PIL import Image

    frames = read_frames(clips / "c-as-1.mp4", size=64)
    (folder / "c-as-1").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / "c-as-1" / f"{i:04d}.png")
    # c-mm-0: five frames short
    write_video(folder / "c-mm-0.mp4", read_frames(clips / "c-mm-0.mp4", size=64)[:15], 25.0)
    # c-mm-1: corrupt
    (folder / "c-mm-1.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))


def test_folder_policies(clip_manifest, tmp_path):
    folder = tmp_path / "method_out"
    _write_outputs(None, folder, clip_manifest)
    result = run_bench(cfg(clip_manifest, tmp_path / "run", method=f"folder:{folder}"))
    by = {(r["clip_id"], r["metric"]): r for r in result.rows}
    resampled = json.loads(by["c-as-0", "psnr"]["extra"])
    assert resampled["resampled"] == {"fps": [30.0, 25.0], "size": [128, 64]}
    assert by["c-as-0", "psnr"]["value"] > 20  # the same clip, re-encoded and resampled
    assert json.loads(by["c-as-1", "psnr"]["extra"])["fps_assumed"] == 25.0
    assert by["c-as-1", "psnr"]["value"] > 25
    assert by["c-mm-0", "psnr"]["value"] is None and by["c-mm-0", "psnr"]["null_reason"] == "frame_count_mismatch"
    assert "expected 20 frames" in json.loads(by["c-mm-0", "psnr"]["extra"])["error"]
    assert by["c-mm-1", "csim"]["null_reason"] == "corrupt_output"
    assert result.summary["failed_clips"] == {"c-mm-0": "frame_count_mismatch", "c-mm-1": "corrupt_output"}
    fid = next(r for r in result.rows if r["metric"] == "fid")
    assert fid["n"] == 2 and "clips_excluded" in fid["flags"]

    trimmed = run_bench(cfg(clip_manifest, tmp_path / "trim", method=f"folder:{folder}", length_policy="trim",
                            limit=3))
    row = next(r for r in trimmed.rows if r["clip_id"] == "c-mm-0" and r["metric"] == "psnr")
    assert row["value"] > 20 and row["flags"] == "length_trimmed" and row["n"] == 14
    assert json.loads(row["extra"])["trimmed"] == {"generated_frames": 15, "reference_frames": 20, "scored_frames": 15}

    empty = tmp_path / "empty"
    empty.mkdir()
    missing = run_bench(cfg(clip_manifest, tmp_path / "missing", method=f"folder:{empty}", limit=1))
    assert {r["null_reason"] for r in missing.rows if r["clip_id"]} == {"missing_output"}
    assert next(r for r in missing.rows if r["metric"] == "fid")["null_reason"] == "no_scored_clips"


def _cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_run_and_listings(clip_manifest, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("talkbench.bench.run.DEFAULT_EVALUATOR", FAKE)
    code, out, err = _cli(capsys, "methods")
    assert code == 0 and "folder:PATH" in out and "cross-reenact" in out
    code, out, err = _cli(capsys, "tasks")
    assert code == 0 and "upper-body (experimental)" in out and "akd_driver" in out
    code, out, err = _cli(capsys, "run", "--method", "static", "--task", "self-reenact", "--manifest",
                          str(clip_manifest), "--out", str(tmp_path / "o"), "--protocol", PROTO, "--limit", "2",
                          "--quiet")
    assert code == 0, err
    assert "PSNR ↑" in out and "2/2 clips" in out and "install with: talkbench weights fetch lpips-alex" in out


def _bad(capsys, *args):
    code, out, err = _cli(capsys, *args)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_cli_bad_input_one_line_and_nothing_written(clip_manifest, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("talkbench.bench.run.DEFAULT_EVALUATOR", FAKE)
    base = ["run", "--manifest", str(clip_manifest), "--protocol", PROTO, "--quiet"]
    out = tmp_path / "out"
    line = _bad(capsys, *base, "--method", "nope", "--task", "self-reenact", "--out", str(out))
    assert "choose from ['folder:PATH', 'gt', 'ours', 'static']" in line
    line = _bad(capsys, *base, "--method", "gt", "--task", "nope", "--out", str(out))
    assert "choose from ['audio-driven', 'cross-reenact', 'self-reenact', 'upper-body']" in line
    line = _bad(capsys, *base, "--method", "ours", "--task", "self-reenact", "--out", str(out))
    assert line == "error: no checkpoint given: method 'ours' needs --checkpoint PATH"
    line = _bad(capsys, *base, "--method", "gt", "--task", "self-reenact", "--executor", "slurm", "--out", str(out))
    assert "unknown executor 'slurm'; choose from ['local', 'ray']" in line
    line = _bad(capsys, *base, "--method", "gt", "--task", "self-reenact", "--split", "val", "--out", str(out))
    assert "split 'val' is empty (splits present: ['test', 'train'])" in line
    # a clips manifest of another schema version
    table = pq.read_table(clip_manifest)
    meta = dict(table.schema.metadata)
    meta[b"talkbench.schema_version"] = b"0"
    old = tmp_path / "old" / "clips.parquet"
    old.parent.mkdir()
    pq.write_table(table.replace_schema_metadata(meta), old)
    line = _bad(capsys, "run", "--manifest", str(old), "--protocol", PROTO, "--method", "gt", "--task",
                "self-reenact", "--out", str(out))
    assert "schema version 0 is not supported (expected 1)" in line
    assert not out.exists()
    # results of another protocol into the same folder
    ok = ["--method", "gt", "--task", "self-reenact", "--limit", "1", "--out", str(out)]
    assert _cli(capsys, *base, *ok)[0] == 0
    before = sorted(p.name for p in out.iterdir())
    line = _bad(capsys, "run", "--manifest", str(clip_manifest), "--protocol", "stand-in-other-64", "--quiet", *ok)
    assert "holds another run (protocol_id 'stand-in-64', this run 'stand-in-other-64')" in line
    assert sorted(p.name for p in out.iterdir()) == before


def tiny_checkpoint(path):
    """A motion-model checkpoint in the trainer's format (tiny preset, random init): exercises loading and driving."""
    import torch

    from talkbench.models import checkpoints
    from talkbench.models.motion import PRESETS, MotionGenerator

    torch.manual_seed(0)
    cfg = PRESETS["tiny"]
    state = MotionGenerator(cfg).state_dict()
    checkpoints.save(path, {"model": state, "ema": state, "opt": {}, "step": 0, "manifest_sha": "test",
                            "cfg": {"family": "motion", "model": cfg.to_dict(), "perceptual": None}})
    return path


def test_ours_with_a_checkpoint(clip_manifest, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    result = run_bench(cfg(clip_manifest, tmp_path / "ours", method="ours", checkpoint=str(ckpt), limit=2))
    psnr = [r for r in result.rows if r["metric"] == "psnr"]
    assert len(psnr) == 2 and all(r["value"] is not None and 0 < r["value"] < 60 for r in psnr)
    assert json.loads(psnr[0]["extra"])["checkpoint"] == "tiny.pt"
    frames = read_frames(tmp_path / "ours" / "videos" / "c-as-0.mp4")
    assert frames.shape == (20, 64, 64, 3)
    run = json.loads((tmp_path / "ours" / "run.json").read_text())
    assert run["method"] == "ours" and len(run["method_key"]) == 64


def test_non_standard_weights_give_one_protocol_id_per_run(clip_manifest, tmp_path):
    # per-clip and set-level evaluators use different files; the run's id covers every metric of the task
    run = BenchConfig(method="static", task="self-reenact", manifest=str(clip_manifest), out=str(tmp_path), limit=2,
                      protocol=PROTO, evaluator="bench_fake_metrics:NonStandardEvaluator", quiet=True)
    result = run_bench(run)
    assert {r["protocol_id"] for r in result.rows} == {"stand-in-64+nonstd.aed-akd-csim-fid-fvd-lpips-psnr-ssim"}
    assert not any(r["protocol_standard"] for r in result.rows)
    assert result.summary["protocol_standard"] is False


def test_upper_body_adds_hkc(clip_manifest, tmp_path):
    result = run_bench(cfg(clip_manifest, tmp_path, method="gt", task="upper-body", limit=1))
    names = sorted({r["metric"] for r in result.rows})
    assert names == ["aed", "akd", "csim", "fid", "fvd", "hkc", "lpips", "psnr", "ssim"]
    assert result.summary["run"]["task"] == "upper-body"
