"""One home for each fact: a metric registered once reaches every output, and a PNG folder is read by the protocol's
one frame reader whichever command scores it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import PROTO, astronaut_clip
from talkbench.bench.run import BenchConfig, run_bench
from talkbench.cli.bench import main as bench_main
from talkbench.cli.main import main as talkbench_main
from talkbench.manifests import get_protocol, read_rows
from talkbench.manifests.frames import read_video
from talkbench.metrics.scores import Score
from talkbench.metrics.spec import METRICS, MetricSpec


def luma_gap(ev, video) -> Score:
    """A toy paired metric: |mean luma of the generated frames - mean luma of the ground truth|."""
    weights = np.array([0.299, 0.587, 0.114])
    gap = abs(float((video.pred_paired @ weights).mean() - (video.gt @ weights).mean()))
    return Score(gap, len(video.pred_paired), {"toy": True})


def _luma(frames: np.ndarray) -> float:
    return float((frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).mean())


def test_a_metric_registered_once_reaches_compute_bench_summary_and_table(clip_manifest, tmp_path, monkeypatch,
                                                                          capsys):
    # the one registration: nothing else is edited
    monkeypatch.setitem(METRICS, "luma_gap", MetricSpec("luma_gap", "paired", False, "Luma gap", luma_gap,
                                                        tasks=("self-reenact",)))
    protocol = get_protocol(PROTO)
    clip = clip_manifest.parent / "clips" / "c-as-0.mp4"
    frames = read_video(clip, protocol).frames

    # metrics compute: a static prediction (frame 0 repeated) as a PNG folder against the clip
    from PIL import Image

    pred = tmp_path / "pred" / "c-as-0"
    pred.mkdir(parents=True)
    for i in range(len(frames)):
        Image.fromarray(frames[0]).save(pred / f"{i:04d}.png")
    out = tmp_path / "compute.parquet"
    assert talkbench_main(["metrics", "compute", "--pred", str(pred), "--gt", str(clip), "--metrics", "psnr,luma_gap",
                           "--protocol", PROTO, "--out", str(out)]) == 0
    row = next(r for r in read_rows(out, "results") if r["metric"] == "luma_gap")
    want = abs(_luma(np.repeat(frames[:1], len(frames), 0)) - _luma(frames))
    assert row["value"] == pytest.approx(want, rel=1e-9) and row["value"] > 0.05
    assert row["protocol_digest"] == protocol.digest

    # bench run: the task picks it up from the registry; frames 1..T-1 are scored
    run = tmp_path / "run"
    result = run_bench(BenchConfig(method="static", task="self-reenact", manifest=str(clip_manifest), out=str(run),
                                   protocol=PROTO, limit=1, quiet=True, n_boot=50))
    bench_row = next(r for r in result.rows if r["metric"] == "luma_gap")
    assert bench_row["value"] == pytest.approx(abs(_luma(np.repeat(frames[:1], 19, 0)) - _luma(frames[1:])), rel=1e-9)
    assert json.loads(bench_row["extra"]) == {"toy": True, "scored_frames": "1..19"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["luma_gap"]["higher_is_better"] is False
    assert summary["metrics"]["luma_gap"]["mean"] == pytest.approx(bench_row["value"])

    # the published table: its label, its direction, ranked (lower wins)
    capsys.readouterr()
    assert bench_main(["publish", str(run), "--out", str(tmp_path / "lb"), "--format", "md", "--no-reported",
                       "--quiet"]) == 0
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert "Luma gap ↓" in md and f"**{bench_row['value']:.3f}**" in md


def test_a_png_folder_scores_alike_through_bench_and_metrics_compute(clip_manifest, tmp_path):
    """512 px astronaut frames in a PNG folder: `bench run --method folder:` and `metrics compute` resize them with
    the protocol's kernel, so PSNR and SSIM agree exactly (they differed by the cv2/PIL kernels before)."""
    from PIL import Image

    protocol = get_protocol(PROTO)
    gt = read_video(clip_manifest.parent / "clips" / "c-as-0.mp4", protocol).frames
    big = astronaut_clip(len(gt), 6, size=512)  # the clip's motion, shifted: a plausible method output
    method_out = tmp_path / "method" / "c-as-0"
    method_out.mkdir(parents=True)
    for i, f in enumerate(big):
        Image.fromarray(f).save(method_out / f"{i:04d}.png")
    result = run_bench(BenchConfig(method=f"folder:{method_out.parent}", task="self-reenact",
                                   manifest=str(clip_manifest), out=str(tmp_path / "run"), protocol=PROTO, limit=1,
                                   quiet=True, n_boot=50))
    bench = {r["metric"]: r["value"] for r in result.rows if r["clip_id"] == "c-as-0"}
    assert json.loads(next(r for r in result.rows if r["metric"] == "psnr")["extra"])["resampled"] == {
        "size": [512, 256]}

    # metrics compute on the scored frames (1..T-1): the same PNGs, and the decoded clip saved losslessly
    pred, ref = tmp_path / "pred" / "c-as-0", tmp_path / "gt" / "c-as-0"
    pred.mkdir(parents=True)
    ref.mkdir(parents=True)
    for i in range(1, len(gt)):
        Image.fromarray(big[i]).save(pred / f"{i:04d}.png")
        Image.fromarray(gt[i]).save(ref / f"{i:04d}.png")
    out = tmp_path / "compute.parquet"
    assert talkbench_main(["metrics", "compute", "--pred", str(pred), "--gt", str(ref), "--metrics", "psnr,ssim",
                           "--protocol", PROTO, "--out", str(out)]) == 0
    compute = {r["metric"]: r["value"] for r in read_rows(out, "results")}
    assert compute["psnr"] == bench["psnr"] and compute["ssim"] == bench["ssim"]
    assert 10 < bench["psnr"] < 40

    # the test can fail: the old bench kernel (cv2 INTER_CUBIC, no antialiasing) scores these frames differently
    import cv2
    import torch

    from talkbench.metrics.pixel import psnr_frames

    old = np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_CUBIC) for f in big[1:]])
    old_psnr = float(psnr_frames(torch.from_numpy(old), torch.from_numpy(gt[1:])).mean())
    assert abs(old_psnr - bench["psnr"]) > 0.01
