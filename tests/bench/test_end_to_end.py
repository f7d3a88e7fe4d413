"""The README chain on real material: demo sources → curate → bench run static and gt → bench publish."""

from __future__ import annotations

import json
import math

import pytest

from talkbench.cli.bench import main as bench_main
from talkbench.cli.main import main as talkbench_main
from talkbench.manifests import read_rows


@pytest.mark.slow
def test_demo_curate_bench_publish(tmp_path, capsys):
    assert talkbench_main(["demo", "make", str(tmp_path / "demo")]) == 0
    assert talkbench_main(["curate", "build-manifest", str(tmp_path / "demo" / "sources.csv"), "--out",
                           str(tmp_path / "data"), "--quiet"]) == 0
    manifest = tmp_path / "data" / "clips.parquet"
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

    board = tmp_path / "leaderboards"
    code = bench_main(["publish", str(tmp_path / "runs" / "static"), str(tmp_path / "runs" / "gt"), "--out", str(board)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "self-reenact · talkbench-v1-256" in printed.out and "static" in printed.out
    md = (board / "leaderboard.md").read_text()
    static_row = next(line for line in md.splitlines() if line.startswith("| static |"))
    assert f"**{static_psnr:.2f} ±" in static_row  # the only ranked measured row is best
    assert "| gt * |" in md and "AniTalker (reported" in md
    html = (board / "index.html").read_text()
    assert 'data-method="static"' in html and (board / "plots" / "self-reenact__talkbench-v1-256__psnr.png").exists()
    assert not math.isnan(static_psnr)
