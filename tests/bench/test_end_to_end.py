"""The README chain on real material: demo sources → curate → bench run static and gt → bench publish."""

from __future__ import annotations

import json
import math

import pytest

from talkbench.cli.bench import main as bench_main
from talkbench.cli.main import main as talkbench_main
from talkbench.manifests import read_rows
from talkbench.media import read_audio, read_frames


@pytest.mark.slow
def test_demo_curate_bench_publish(demo_curated, tmp_path, capsys):
    manifest = demo_curated[1] / "clips.parquet"  # `demo make` + `curate build-manifest`, shared with test_demo
    test_clips = [c for c in read_rows(manifest, "clips") if c["split"] == "test"]
    assert test_clips, "the demo must give a test split"
    capsys.readouterr()
    runs = {}
    for method in ("static", "gt"):
        out = tmp_path / "runs" / method
        code = bench_main(["run", "--method", method, "--task", "self-reenact", "--manifest", str(manifest),
                           "--out", str(out), "--quiet"])
        printed = capsys.readouterr()
        assert code == 0, printed.err
        assert "PSNR ↑" in printed.out and "install with: talkbench weights fetch" in printed.out
        runs[method] = json.loads((out / "summary.json").read_text())
    n = len(test_clips)
    assert runs["gt"]["n_scored"] == runs["static"]["n_scored"] == n
    # gt is the ceiling: identical frames give PSNR inf and SSIM 1; static (frame 0 repeated) is far below
    assert runs["gt"]["metrics"]["psnr"]["mean"] == "inf"
    assert runs["gt"]["metrics"]["ssim"]["mean"] == pytest.approx(1.0)
    static_psnr = runs["static"]["metrics"]["psnr"]["mean"]
    assert 8 < static_psnr < 40 and runs["static"]["metrics"]["ssim"]["mean"] < 0.95
    # no weights are installed in the test home: those metrics are null with the install hint
    assert "lpips" in runs["gt"]["missing_weights"] and runs["gt"]["metrics"]["lpips"]["n"] == 0

    # The bundled model on the same split: train the tiny preset briefly on the train clips, generate one video
    # from a test clip, then score it with `bench run --method ours` (a code-path check: 3 steps learn nothing).
    run_dir = tmp_path / "motion"
    assert talkbench_main(["train", "motion", "--manifest", str(manifest), "--preset", "tiny", "--out", str(run_dir),
                           "--max-steps", "3", "--batch-size", "2", "--num-workers", "0", "--device", "cpu",
                           "--perceptual", "none-l1-pyramid"]) == 0
    clip_path = str(manifest.parent / test_clips[0]["path"])
    assert talkbench_main(["generate", "reenact", "--source", clip_path, "--driver", clip_path, "--checkpoint",
                           str(run_dir / "last.pt"), "--out", str(tmp_path / "reenacted.mp4")]) == 0
    assert read_frames(tmp_path / "reenacted.mp4").shape[0] == test_clips[0]["n_frames"]
    assert read_audio(tmp_path / "reenacted.mp4") is not None  # the driver's speech is muxed
    capsys.readouterr()
    assert bench_main(["run", "--method", "ours", "--checkpoint", str(run_dir / "last.pt"), "--task", "self-reenact",
                       "--manifest", str(manifest), "--limit", "1", "--out", str(tmp_path / "runs" / "ours"),
                       "--quiet"]) == 0
    ours_rows = read_rows(tmp_path / "runs" / "ours" / "results.parquet", "results")
    ours_psnr = [r["value"] for r in ours_rows if r["metric"] == "psnr"]
    assert len(ours_psnr) == 1 and 5 < ours_psnr[0] < 60 and {r["method"] for r in ours_rows} == {"ours"}

    board = tmp_path / "leaderboards"
    # ours scored 1 clip (--limit 1), static and gt every test clip: one table would compare different clip sets
    code = bench_main(["publish", str(tmp_path / "runs" / "static"), str(tmp_path / "runs" / "gt"),
                       str(tmp_path / "runs" / "ours"), "--out", str(board)])
    printed = capsys.readouterr()
    if n > 1:
        assert code == 1 and "different clip sets" in printed.err and not board.exists()
    code = bench_main(["publish", str(tmp_path / "runs" / "static"), str(tmp_path / "runs" / "gt"), "--out",
                       str(board)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "self-reenact · talkbench-v1-256" in printed.out and "static" in printed.out
    md = (board / "leaderboard.md").read_text()
    static_row = next(line for line in md.splitlines() if line.startswith("| static |"))
    assert f"{static_psnr:.2f} ±" in static_row
    best = "static"  # the only ranked measured row (gt is the ceiling, not ranked) is bold
    best_row = next(line for line in md.splitlines() if line.startswith(f"| {best} |"))
    assert "**" in best_row.split("|")[3]
    assert "| gt * |" in md and "AniTalker (reported" in md
    html = (board / "index.html").read_text()
    assert 'data-method="static"' in html and (board / "plots" / "self-reenact__talkbench-v1-256__psnr.png").exists()
    assert not math.isnan(static_psnr)
