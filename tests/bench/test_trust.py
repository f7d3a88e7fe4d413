"""No stale score and no half-finished run (issue 11, points 1, 4 and 5), on the real Megamind/astronaut clips.

- a changed `folder:` output is rescored, a failed clip is retried, an unchanged one is kept;
- `ours` with another checkpoint is refused, naming both checkpoints' sha256;
- bad option values and a bad checkpoint are refused with one line before OUT exists, and a retry into the same OUT
  works; publish refuses a run folder whose summary is missing or describes other results.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import PROTO
from talkbench.bench.run import BenchConfig, run_bench
from talkbench.cli.bench import main
from talkbench.media import read_frames, sha256_file, write_video


def cfg(manifest, out, method="gt", **kw):
    return BenchConfig(method=method, task="self-reenact", manifest=str(manifest), out=str(out), protocol=PROTO,
                       quiet=True, n_boot=50, **kw)


def psnr(result, clip_id):
    return next(r for r in result.rows if r["clip_id"] == clip_id and r["metric"] == "psnr")


def test_changed_output_is_rescored_and_failed_clip_retried(clip_manifest, tmp_path):
    folder = tmp_path / "method"
    folder.mkdir()
    clip = read_frames(clip_manifest.parent / "clips" / "c-as-0.mp4")  # (20, 96, 96, 3), the clip itself
    write_video(folder / "c-as-0.mp4", clip, 25.0)
    out = tmp_path / "run"
    first = run_bench(cfg(clip_manifest, out, method=f"folder:{folder}", limit=2))
    assert psnr(first, "c-as-0")["value"] > 25  # the clip re-encoded: close to itself
    assert psnr(first, "c-as-1")["null_reason"] == "missing_output"

    # The method's outputs change: c-as-0 becomes a frozen first frame, c-as-1 appears.
    write_video(folder / "c-as-0.mp4", np.repeat(clip[:1], len(clip), axis=0), 25.0)
    other = read_frames(clip_manifest.parent / "clips" / "c-as-1.mp4")
    write_video(folder / "c-as-1.mp4", other, 25.0)
    second = run_bench(cfg(clip_manifest, out, method=f"folder:{folder}", limit=2))
    assert second.n_cached == 0  # both clips rescored
    assert psnr(second, "c-as-0")["value"] < psnr(first, "c-as-0")["value"] - 5
    assert psnr(second, "c-as-1")["value"] > 25 and second.summary["failed_clips"] == {}
    record = json.loads((out / "clips" / "c-as-0.json").read_text())
    assert record["output_sha256"] == sha256_file(folder / "c-as-0.mp4")

    # Nothing changed: both clips are kept, the results are the same bytes.
    before = (out / "results.parquet").read_bytes()
    third = run_bench(cfg(clip_manifest, out, method=f"folder:{folder}", limit=2))
    assert third.n_cached == 2 and (out / "results.parquet").read_bytes() == before

    # Only the changed clip reruns.
    write_video(folder / "c-as-1.mp4", np.repeat(other[:1], len(other), axis=0), 25.0)
    fourth = run_bench(cfg(clip_manifest, out, method=f"folder:{folder}", limit=2))
    assert fourth.n_cached == 1 and psnr(fourth, "c-as-0")["value"] == psnr(second, "c-as-0")["value"]
    assert psnr(fourth, "c-as-1")["value"] < psnr(second, "c-as-1")["value"] - 5


def test_a_clip_that_keeps_failing_is_retried_each_time(clip_manifest, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "run"
    run_bench(cfg(clip_manifest, out, method=f"folder:{empty}", limit=1))
    first = json.loads((out / "clips" / "c-as-0.json").read_text())
    again = run_bench(cfg(clip_manifest, out, method=f"folder:{empty}", limit=1))
    second = json.loads((out / "clips" / "c-as-0.json").read_text())
    assert again.n_cached == 0 and not second["ok"] and second["attempt"] != first["attempt"]


def _cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --workers and --device are usage errors (exit 2), checked the same way by every command (cli._app); the rest are
# refused by bench itself (exit 1). Either way: one line, before OUT exists.
@pytest.mark.parametrize("option, line, exit_code", [
    (["--bootstrap", "0"], "--bootstrap must be an integer ≥ 1, got 0", 1),
    (["--workers", "0"], "Invalid value for '--workers': must be ≥ 1, got 0", 2),
    (["--limit", "0"], "--limit must be an integer ≥ 1, got 0", 1),
    (["--batch-size", "0"], "--batch-size must be an integer ≥ 1, got 0", 1),
    (["--seed", "-1"], "--seed must be an integer ≥ 0, got -1", 1),
    (["--length-policy", "pad"], "unknown length policy 'pad'; choose from ['error', 'trim']", 1),
    (["--device", "cuda:7"], "Invalid value for '--device': cuda:7", 2),
    (["--device", "gpu"], "Invalid value for '--device': unknown device 'gpu'", 2),
])
def test_bad_option_values_are_refused_before_any_work(clip_manifest, tmp_path, capsys, option, line, exit_code):
    out = tmp_path / "out"
    code, _, err = _cli(capsys, "run", "--method", "gt", "--task", "self-reenact", "--manifest", str(clip_manifest),
                        "--out", str(out), "--protocol", PROTO, "--quiet", *option)
    assert code == exit_code and len(err.strip().splitlines()) == 1, err
    assert line in err
    assert not out.exists()


def test_publish_refuses_a_run_folder_without_its_summary(clip_manifest, tmp_path, capsys):
    out = tmp_path / "run"
    run_bench(cfg(clip_manifest, out, limit=1))
    board = tmp_path / "board"
    assert _cli(capsys, "publish", str(out), "--out", str(board), "--format", "csv", "--quiet")[0] == 0
    summary = (out / "summary.json").read_text()
    (out / "summary.json").unlink()
    code, _, err = _cli(capsys, "publish", str(out), "--out", str(tmp_path / "b2"), "--format", "csv")
    assert code == 1 and "no summary.json, the run did not finish" in err and not (tmp_path / "b2").exists()
    # a summary left from another results file (a run that died between results and summary)
    stale = json.loads(summary)
    stale["results_sha256"] = "0" * 64
    (out / "summary.json").write_text(json.dumps(stale))
    code, _, err = _cli(capsys, "publish", str(out / "results.parquet"), "--out", str(tmp_path / "b3"))
    assert code == 1 and "does not describe results.parquet" in err and not (tmp_path / "b3").exists()


def checkpoint(path, seed):
    import torch

    from talkbench.models import checkpoints
    from talkbench.models.motion import PRESETS, MotionGenerator

    torch.manual_seed(seed)
    cfg_ = PRESETS["tiny"]
    state = MotionGenerator(cfg_).state_dict()
    checkpoints.save(path, {"model": state, "ema": state, "opt": {}, "step": 0, "manifest_sha": "test",
                            "cfg": {"family": "motion", "model": cfg_.to_dict(), "perceptual": None}})
    return path


@pytest.mark.slow
def test_bad_checkpoint_refused_before_out_and_a_changed_one_names_both_hashes(clip_manifest, tmp_path, capsys):
    out = tmp_path / "ours"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    args = ["run", "--method", "ours", "--task", "self-reenact", "--manifest", str(clip_manifest), "--out", str(out),
            "--protocol", PROTO, "--quiet", "--limit", "1", "--bootstrap", "50"]
    code, _, err = _cli(capsys, *args, "--checkpoint", str(bad))
    assert code == 1 and "not a readable talkbench checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    a, b = checkpoint(tmp_path / "a.pt", 0), checkpoint(tmp_path / "b.pt", 1)
    code, _, err = _cli(capsys, *args, "--checkpoint", str(a))  # the retry into the same OUT works
    assert code == 0, err
    results = (out / "results.parquet").read_bytes()
    code, _, err = _cli(capsys, *args, "--checkpoint", str(b))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"checkpoint_sha256 '{sha256_file(a)}' → '{sha256_file(b)}'" in err
    assert (out / "results.parquet").read_bytes() == results
