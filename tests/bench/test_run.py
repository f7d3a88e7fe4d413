"""`bench run` orchestration on real clips (Megamind, astronaut + espeak-ng speech), scored by the real
talkbench.metrics Evaluator under the real talkbench-v1-256 protocol.

The weights home is empty unless a test installs files: PSNR, SSIM and AKD (no weights) give real values, checked
against skimage on the same decoded frames; LPIPS, CSIM, AED, FID and FVD come back null with the install command.
Metric numerics themselves are tested in tests/metrics.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import PROTO, install_random_weights
from talkbench.bench.run import BenchConfig, run_bench
from talkbench.cli.bench import main
from talkbench.manifests import read_rows
from talkbench.media import probe_json, read_frames, write_video

SIZE = 256  # talkbench-v1-256 decodes every clip to 256x256
MISSING = {"lpips": "lpips-alex", "csim": "buffalo_l", "aed": "buffalo_l", "fid": "fid-inception", "fvd": "i3d"}


def cfg(manifest, out, method="gt", task="self-reenact", **kw):
    return BenchConfig(method=method, task=task, manifest=str(manifest), out=str(out), protocol=PROTO, quiet=True,
                       n_boot=200, **kw)


def hint(entry: str) -> str:
    return f"missing weights: talkbench weights fetch {entry}  (or: talkbench weights import PATH --as {entry})"


def decoded(clip_manifest, clip_id: str) -> np.ndarray:
    """The clip as the protocol decodes it (25 fps, then 96 → 256 px with PIL's bicubic), independently of the bench
    code."""
    from PIL import Image

    frames = read_frames(clip_manifest.parent / "clips" / f"{clip_id}.mp4", fps=25.0)
    return np.stack([np.asarray(Image.fromarray(f).resize((SIZE, SIZE), Image.BICUBIC)) for f in frames])


@pytest.fixture(scope="module")
def gt_run(clip_manifest, empty_home, tmp_path_factory):
    out = tmp_path_factory.mktemp("gt_run")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse home fixture is function-scoped
        mp.setenv("TALKBENCH_HOME", str(empty_home))
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
    by = {(r["clip_id"], r["metric"]): r for r in rows}
    for clip in ("c-as-0", "c-as-1", "c-mm-0", "c-mm-1"):
        # the ceiling: frames 1..19 scored, identical to the reference
        assert by[clip, "psnr"]["value"] == float("inf") and by[clip, "psnr"]["n"] == 19
        assert by[clip, "ssim"]["value"] == pytest.approx(1.0, abs=1e-12) and by[clip, "ssim"]["n"] == 19
        for metric, entry in MISSING.items():
            if metric not in ("fid", "fvd"):
                assert by[clip, metric]["value"] is None and by[clip, metric]["null_reason"] == hint(entry)
    assert json.loads(by["c-as-0", "psnr"]["extra"])["scored_frames"] == "1..19"
    # Face Mesh finds the astronaut at 256 px: identical landmarks, zero keypoint distance
    assert by["c-as-0", "akd"]["value"] == 0.0 and by["c-as-0", "akd"]["n"] == 19
    for metric in ("fid", "fvd"):
        row = by[None, metric]
        assert row["value"] is None and row["null_reason"] == hint(MISSING[metric]) and row["n"] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["psnr"]["mean"] == "inf"  # JSON has no inf: written as a string
    assert summary["metrics"]["ssim"]["mean"] == pytest.approx(1.0)
    assert summary["metrics"]["lpips"]["null_reasons"] == {hint("lpips-alex"): 4}
    assert summary["metrics"]["fid"]["level"] == "set" and summary["metrics"]["fid"]["value"] is None
    assert set(summary["missing_weights"]) == set(MISSING)
    assert summary["missing_weights"]["lpips"] == hint("lpips-alex").removeprefix("missing weights: ")
    assert summary["n_clips"] == summary["n_scored"] == 4
    video = out / "videos" / "c-as-0.mp4"
    kinds = sorted(s["codec_type"] for s in probe_json(video)["streams"])
    assert kinds == ["audio", "video"]  # the clip's audio is muxed
    assert read_frames(video).shape == (20, SIZE, SIZE, 3)


def test_rerun_skips_finished_clips_and_gives_identical_results(gt_run, clip_manifest):
    out, _ = gt_run
    before = (out / "results.parquet").read_bytes()
    assert run_bench(cfg(clip_manifest, out)).n_cached == 4  # a finished run reruns as a no-op
    # as if the run had been killed before the last clip (rank 3, c-mm-1) finished: the executor redoes only it
    (out / "stats" / "clips" / "completions" / "00003").unlink()
    (out / "videos" / "c-mm-1.mp4").unlink()
    result = run_bench(cfg(clip_manifest, out))
    assert result.n_cached == 3 and (out / "videos" / "c-mm-1.mp4").exists()
    assert (out / "results.parquet").read_bytes() == before


def test_static_baseline_scores_match_skimage(clip_manifest, tmp_path):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    result = run_bench(cfg(clip_manifest, tmp_path, method="static"))
    by = {(r["clip_id"], r["metric"]): r for r in result.rows}
    psnr = {}
    for clip in ("c-as-0", "c-mm-0"):
        # static repeats frame 0 (the source); the metrics see frames 1..19 of the decoded clip
        frames = decoded(clip_manifest, clip)
        want_psnr = np.mean([peak_signal_noise_ratio(f, frames[0], data_range=255) for f in frames[1:]])
        want_ssim = np.mean([structural_similarity(f, frames[0], gaussian_weights=True, sigma=1.5,
                                                   use_sample_covariance=False, data_range=255, channel_axis=-1)
                             for f in frames[1:]])
        assert by[clip, "psnr"]["value"] == pytest.approx(want_psnr, rel=1e-9)
        assert by[clip, "ssim"]["value"] == pytest.approx(want_ssim, abs=1e-6)
        assert by[clip, "psnr"]["n"] == by[clip, "ssim"]["n"] == 19
        psnr[clip] = by[clip, "psnr"]["value"]
    assert all(10 < v < 30 for v in psnr.values())  # finite, far below gt's inf
    # a frozen head does not follow the driver's motion: a real, non-zero keypoint distance
    assert by["c-as-0", "akd"]["value"] > 0.5
    values = [r["value"] for r in result.rows if r["metric"] == "psnr"]
    m = result.summary["metrics"]["psnr"]
    assert m["mean"] == pytest.approx(np.mean(values)) and m["n"] == 4
    assert m["ci_low"] <= m["mean"] <= m["ci_high"]
    assert result.summary["metrics"]["csim"]["null_reasons"] == {hint("buffalo_l"): 4}
    assert next(r for r in result.rows if r["metric"] == "fvd")["null_reason"] == hint("i3d")


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
    # Face Mesh finds the astronaut in the 256 px frames: a static video scores the driver's own (non-zero) motion
    astronaut = next(r for r in akd if r["clip_id"] == "c-as-0")
    assert astronaut["value"] is not None and 0.01 < astronaut["value"] < 1.0
    audio = run_bench(cfg(clip_manifest, tmp_path / "audio", method="gt", task="audio-driven"))
    names = {r["metric"] for r in audio.rows}
    assert {"psnr_vs_gt", "sync_c", "fid"} <= names and "psnr" not in names
    psnr = [r for r in audio.rows if r["metric"] == "psnr_vs_gt"]
    assert all(json.loads(r["extra"])["compared_with"] == "ground truth" for r in psnr)
    assert all(r["value"] == float("inf") for r in psnr)  # gt against its own clip
    # no SyncNet installed: the three sync metrics are null with its install command, not skipped
    sync = [r for r in audio.rows if r["metric"] in ("sync_c", "sync_d", "av_offset")]
    assert len(sync) == 12 and {r["null_reason"] for r in sync} == {hint("syncnet")}


def _write_outputs(src_run, folder, clip_manifest):
    """External-method outputs in every layout the folder policy covers, made from real clips."""
    folder.mkdir()
    clips = clip_manifest.parent / "clips"
    # c-as-0: a 128 px video at 30 fps -> resampled to 25 fps and 256 px, recorded
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clips / "c-as-0.mp4"), "-vf", "fps=30,scale=128:128",
                    str(folder / "c-as-0.mp4")], check=True)
    # c-as-1: PNG frames
    from PIL import Image

    frames = read_frames(clips / "c-as-1.mp4", size=SIZE)
    (folder / "c-as-1").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / "c-as-1" / f"{i:04d}.png")
    # c-mm-0: five frames short
    write_video(folder / "c-mm-0.mp4", read_frames(clips / "c-mm-0.mp4", size=SIZE)[:15], 25.0)
    # c-mm-1: corrupt
    (folder / "c-mm-1.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))


def test_folder_policies(clip_manifest, tmp_path):
    folder = tmp_path / "method_out"
    _write_outputs(None, folder, clip_manifest)
    result = run_bench(cfg(clip_manifest, tmp_path / "run", method=f"folder:{folder}"))
    by = {(r["clip_id"], r["metric"]): r for r in result.rows}
    resampled = json.loads(by["c-as-0", "psnr"]["extra"])
    assert resampled["resampled"] == {"fps": [30.0, 25.0], "size": [128, SIZE]}
    assert by["c-as-0", "psnr"]["value"] > 20  # the same clip, re-encoded and resampled
    assert json.loads(by["c-as-1", "psnr"]["extra"])["fps_assumed"] == 25.0
    assert by["c-as-1", "psnr"]["value"] > 25
    assert by["c-mm-0", "psnr"]["value"] is None and by["c-mm-0", "psnr"]["null_reason"] == "frame_count_mismatch"
    assert "expected 20 frames" in json.loads(by["c-mm-0", "psnr"]["extra"])["error"]
    assert by["c-mm-1", "csim"]["null_reason"] == "corrupt_output"
    assert result.summary["failed_clips"] == {"c-mm-0": "frame_count_mismatch", "c-mm-1": "corrupt_output"}
    fid = next(r for r in result.rows if r["metric"] == "fid")
    # two clips failed: the set-level row says so (and stays null without the Inception weights)
    assert json.loads(fid["extra"])["excluded_clips"] == 2 and "clips_excluded" in fid["flags"]
    assert fid["value"] is None and fid["null_reason"] == hint("fid-inception")

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


def test_cli_run_and_listings(clip_manifest, tmp_path, capsys):
    code, out, err = _cli(capsys, "methods")
    assert code == 0 and "folder:PATH" in out and "cross-reenact" in out
    code, out, err = _cli(capsys, "tasks")
    assert code == 0 and "upper-body (experimental)" in out and "akd_driver" in out
    code, out, err = _cli(capsys, "run", "--method", "static", "--task", "self-reenact", "--manifest",
                          str(clip_manifest), "--out", str(tmp_path / "o"), "--protocol", PROTO, "--limit", "2",
                          "--quiet")
    assert code == 0, err
    assert "PSNR ↑" in out and "2/2 clips" in out and "install with: talkbench weights fetch lpips-alex" in out
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["run"]["protocol_id"] == PROTO and summary["n_scored"] == 2
    assert 10 < summary["metrics"]["psnr"]["mean"] < 30


def _bad(capsys, *args, code=1):
    got, out, err = _cli(capsys, *args)
    assert got == code
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_cli_bad_input_one_line_and_nothing_written(clip_manifest, tmp_path, capsys):
    base = ["run", "--manifest", str(clip_manifest), "--protocol", PROTO, "--quiet"]
    out = tmp_path / "out"
    line = _bad(capsys, *base, "--method", "nope", "--task", "self-reenact", "--out", str(out), code=2)
    assert "unknown method 'nope'; choose from ['folder:PATH', 'gt', 'ours', 'static']" in line
    line = _bad(capsys, *base, "--method", "gt", "--task", "nope", "--out", str(out), code=2)  # a usage error (issue 12)
    assert "choose from ['audio-driven', 'cross-reenact', 'instruction', 'self-reenact', 'upper-body']" in line
    line = _bad(capsys, *base, "--method", "ours", "--task", "self-reenact", "--out", str(out))
    assert line == "error: no checkpoint given: method 'ours' needs --checkpoint PATH"
    line = _bad(capsys, *base, "--method", "gt", "--task", "self-reenact", "--executor", "slurm", "--out", str(out),
                code=2)
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
    line = _bad(capsys, "run", "--manifest", str(clip_manifest), "--protocol", "talkbench-v1-512", "--quiet", *ok)
    assert "holds another run (protocol_id 'talkbench-v1-256', this run 'talkbench-v1-512')" in line
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


@pytest.mark.slow
def test_ours_with_a_checkpoint(clip_manifest, tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    result = run_bench(cfg(clip_manifest, tmp_path / "ours", method="ours", checkpoint=str(ckpt), limit=2))
    psnr = [r for r in result.rows if r["metric"] == "psnr"]
    assert len(psnr) == 2 and all(r["value"] is not None and 0 < r["value"] < 60 for r in psnr)
    assert json.loads(psnr[0]["extra"])["checkpoint"] == "tiny.pt"
    frames = read_frames(tmp_path / "ours" / "videos" / "c-as-0.mp4")
    assert frames.shape == (20, SIZE, SIZE, 3)
    run = json.loads((tmp_path / "ours" / "run.json").read_text())
    assert run["method"] == "ours" and len(run["method_key"]) == 64


def test_non_standard_weights_give_one_protocol_id_and_are_refused_in_a_standard_table(
        gt_run, clip_manifest, tmp_path, monkeypatch, capsys):
    # A user imports random LPIPS files (AlexNet backbone and linear heads, in the official legacy-pickle format)
    # with --unverified: their hashes are not the official ones. A random I3D is imported --unverified too: the
    # registry pins no hash for it, so the declaration alone makes it non-official. LPIPS and FVD then get real values from random networks: they check the plumbing (the
    # per-clip rows, features of every scored clip in one set-level reduction), not accuracy. FID stays null:
    # a random Inception-v3 at 299 px costs ~30 s of CPU here, and its null path is the same as in the gt run.
    home = tmp_path / "home"
    records = install_random_weights(home, ["alexnet", "lpips-alex", "i3d"])
    assert records["alexnet"]["official"] is False and records["lpips-alex"]["official"] is False
    assert records["i3d"]["official"] is False
    monkeypatch.setenv("TALKBENCH_HOME", str(home))
    result = run_bench(cfg(clip_manifest, tmp_path / "run", method="static", limit=2))
    # the id names the digest of every non-official file the task's metrics use
    overrides = sorted((name, records[name]["sha256"]) for name in ("alexnet", "lpips-alex", "i3d"))
    digest = hashlib.sha256(json.dumps(overrides).encode()).hexdigest()
    nonstd = f"{PROTO}+nonstd.{digest[:12]}"
    assert {r["protocol_id"] for r in result.rows} == {nonstd}
    assert not any(r["protocol_standard"] for r in result.rows)
    assert result.summary["protocol_standard"] is False and result.summary["run"]["protocol_id"] == nonstd
    lpips = [r for r in result.rows if r["metric"] == "lpips"]
    assert len(lpips) == 2 and all(r["value"] is not None and np.isfinite(r["value"]) and r["n"] == 19
                                   for r in lpips)
    assert json.loads(lpips[0]["weights"]) == {n: records[n]["sha256"] for n in ("alexnet", "lpips-alex")}
    by = {r["metric"]: r for r in result.rows if r["clip_id"] is None}
    fvd = by["fvd"]
    assert fvd["value"] is not None and np.isfinite(fvd["value"]) and fvd["n"] == 2
    assert json.loads(fvd["extra"]) == {"fake": 2, "real": 2, "skipped_short_clips": 0,  # one 16-frame window each
                                        "reference_stats": "miss"}
    assert json.loads(fvd["weights"]) == {"i3d": records["i3d"]["sha256"]}
    assert by["fid"]["value"] is None and by["fid"]["null_reason"] == hint("fid-inception")
    psnr = [r for r in result.rows if r["metric"] == "psnr"]
    assert len(psnr) == 2 and all(10 < r["value"] < 30 for r in psnr)  # weights-free metrics are unchanged

    # publishing it into a table of the standard protocol is refused, one line, nothing written
    board = tmp_path / "board"
    code = main(["publish", str(tmp_path / "run"), str(gt_run[0]), "--protocol", PROTO, "--out", str(board)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert f"results of protocol {nonstd!r} cannot go into a {PROTO!r} table" in err[0]
    assert not board.exists()
    # without --protocol each protocol gets its own table, and the non-standard run is never ranked
    from talkbench.leaderboards.publish import build, load_results

    boards = {b.protocol_id: b for b in build(load_results([str(tmp_path / "run"), str(gt_run[0])])).boards}
    assert set(boards) == {PROTO, nonstd}
    row = next(r for r in boards[nonstd].rows if r.method == "static")
    assert row.standard is False and row.cells["psnr"].rank is None


def test_upper_body_adds_hkc(clip_manifest, tmp_path):
    result = run_bench(cfg(clip_manifest, tmp_path, method="gt", task="upper-body", limit=1))
    names = sorted({r["metric"] for r in result.rows})
    assert names == ["aed", "akd", "csim", "fid", "fvd", "hkc", "lpips", "psnr", "ssim"]
    assert result.summary["run"]["task"] == "upper-body"


def test_second_method_reuses_the_ground_truth_statistics(clip_manifest, tmp_path, monkeypatch):
    # FVD with a random I3D (official format, --unverified): the ground truth's statistics are computed by the first
    # method's run, read back by the second's and by a rerun, and recomputed when the clip set changes.
    home = tmp_path / "home"
    install_random_weights(home, ["i3d"])
    monkeypatch.setenv("TALKBENCH_HOME", str(home))

    def fvd(method, out, limit):
        rows = run_bench(cfg(clip_manifest, tmp_path / out, method=method, limit=limit)).rows
        row = next(r for r in rows if r["metric"] == "fvd" and r["clip_id"] is None)
        return row["value"], json.loads(row["extra"])

    gt_value, gt_extra = fvd("gt", "gt", 2)
    static_value, static_extra = fvd("static", "static", 2)
    again_value, again_extra = fvd("static", "static-again", 2)
    assert gt_extra["reference_stats"] == "miss" and gt_value == pytest.approx(0.0, abs=1e-6)  # gt vs itself
    assert static_extra["reference_stats"] == "hit" and again_extra["reference_stats"] == "hit"
    assert static_extra["real"] == gt_extra["real"] == 2 and static_value > 1e-3
    assert again_value == static_value  # the same statistics, the same number
    assert len(list((home / "cache" / "reference_stats").glob("fvd-*.npz"))) == 1
    # another clip set is another key: recomputed, and stored beside the first
    _, one_extra = fvd("static", "static-three", 3)
    assert one_extra["reference_stats"] == "miss"
    assert len(list((home / "cache" / "reference_stats").glob("fvd-*.npz"))) == 2
