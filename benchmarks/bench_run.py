"""Wall time of `bench run` per clip and per metric on the CPU, and where the time goes.

    python benchmarks/bench_run.py --manifest DIR/clips.parquet        # an existing clip manifest
    python benchmarks/bench_run.py --demo /tmp/tb-demo                  # demo make + curate build-manifest first

Three measurements on the same clips:

1. ``bench run`` (self-reenact) for ``static`` and ``gt``: total wall time, and per clip the time spent decoding,
   generating, writing (H.264 video + lossless cache) and in the per-clip metrics, from ``OUT/clips/*.json``;
   the set-level reduction (FID/FVD) from the executor stats.
2. Per metric: one single-metric Evaluator per metric over the same frames, first clip (includes building the
   network) and the mean of the others (steady state).
3. The reference in the same run: decoding + the metrics alone, without the orchestration; the difference to (1)
   is what `bench run` itself costs.

``--random-weights`` installs random files in each official format into a throwaway TALKBENCH_HOME, so LPIPS, FID,
FVD, CSIM/AED and Sync run their real code paths (values are meaningless; the protocol is marked non-standard).
FID Inception, AlexNet and SyncNet are the real architectures; the I3D and ArcFace stand-ins are small networks,
so FVD and CSIM/AED times are not representative: they are marked in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

STAND_IN = {"fvd", "csim", "aed"}  # random random_weights are not the real architectures for these


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (ffmpeg): the cost a loaded machine does not inflate."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def make_demo(root: Path) -> Path:
    from talkbench.cli.main import main

    manifest = root / "data" / "clips.parquet"
    if not manifest.exists():
        assert main(["demo", "make", str(root / "demo")]) == 0
        assert main(["curate", "build-manifest", str(root / "demo" / "sources.csv"), "--out", str(root / "data"),
                     "--quiet"]) == 0
    return manifest


def time_runs(manifest: Path, work: Path, split: str, limit: int | None) -> dict:
    from talkbench.bench.run import BenchConfig, run_bench

    out = {}
    for method in ("static", "gt"):
        run_dir = work / method
        t0, c0 = time.perf_counter(), cpu_seconds()
        result = run_bench(BenchConfig(method=method, task="self-reenact", manifest=str(manifest), out=str(run_dir),
                                       split=split, limit=limit, quiet=True))
        total, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        clips = [json.loads(p.read_text()) for p in sorted((run_dir / "clips").glob("*.json"))]
        set_stats = json.loads((run_dir / "stats" / "set" / "summary.json").read_text())
        out[method] = {"total": total, "cpu": cpu, "clips": clips,
                       "set_seconds": sum(s["seconds"] for s in set_stats["steps"]),
                       "protocol_id": result.rows[0]["protocol_id"] if result.rows else "?",
                       "frames": sum(c.get("n_frames", 0) for c in clips)}
    return out


def time_metrics(manifest: Path, split: str, limit: int | None) -> tuple[dict, float]:
    """Per metric: (first clip seconds, steady seconds per clip, frames) on static predictions vs the clip."""
    import numpy as np

    from talkbench.manifests import get_protocol, read_rows
    from talkbench.media import read_audio, read_frames
    from talkbench.metrics.evaluate import Evaluator
    from talkbench.metrics.spec import METRICS, computable

    protocol = get_protocol("talkbench-v1-256")
    clips = sorted((c for c in read_rows(manifest, "clips") if c["split"] == split), key=lambda c: c["clip_id"])
    clips = clips[:limit] if limit else clips
    t0, c0 = time.perf_counter(), cpu_seconds()
    data = []
    for c in clips:
        path = manifest.parent / c["path"]
        gt = read_frames(path, fps=protocol.fps, size=protocol.size)
        audio = read_audio(path, protocol.audio_rate)
        data.append((c["clip_id"], np.repeat(gt[:1], len(gt), 0)[1:], gt[1:], gt[0], audio))
    decode, decode_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    results = {}
    for metric in computable():
        if metric in ("hkc", "akd_driver"):
            continue  # upper-body and cross-reenact only
        ev = Evaluator("talkbench-v1-256", metrics=[metric])
        if metric in ev.missing_weights():
            results[metric] = None
            continue
        per_clip, c0 = [], cpu_seconds()
        for clip_id, pred, gt, source, audio in data:
            t = time.perf_counter()
            ev.add_video(clip_id, pred, gt=gt, source=source, audio=audio)
            per_clip.append(time.perf_counter() - t)
        fin = 0.0
        if METRICS[metric].level == "set":
            t = time.perf_counter()
            ev.finalize()
            fin = time.perf_counter() - t
        results[metric] = {"first": per_clip[0], "steady": statistics.mean(per_clip[1:]) if len(per_clip) > 1 else
                           per_clip[0], "finalize": fin, "total": sum(per_clip) + fin, "cpu": cpu_seconds() - c0,
                           "frames": sum(len(d[1]) for d in data)}
    return results, (decode, decode_cpu)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", type=Path)
    src.add_argument("--demo", type=Path, help="folder for demo make + curate (reused when present)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--random-weights", action="store_true")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    home = tempfile.mkdtemp(prefix="tb-bench-home-")
    os.environ["TALKBENCH_HOME"] = home
    if args.random_weights:
        from talkbench.metrics import random_weights

        random_weights.install_random()
    manifest = args.manifest or make_demo(args.demo)
    import torch

    console.print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}, load avg: "
                  f"{os.getloadavg()[0]:.1f}, weights: {'random (official formats)' if args.random_weights else 'none'}")

    # Imports (torch, torchmetrics, scipy.signal, mediapipe: tens of seconds on a loaded machine) are paid once per
    # process; load them before timing, so the first bench run does not carry them and the reference does not skip them.
    import talkbench.bench.run  # noqa: F401
    import talkbench.metrics.evaluate  # noqa: F401
    import talkbench.metrics.scores  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="tb-bench-run-") as work:
        runs = time_runs(manifest, Path(work), args.split, args.limit)
    table = Table(title=f"bench run self-reenact ({manifest})")
    for col in ("method", "clips", "frames", "total s", "s/clip", "decode", "generate", "encode*", "write", "metrics",
                "set-level", "protocol"):
        table.add_column(col, justify="left" if col in ("method", "protocol") else "right")
    for method, r in runs.items():
        n = max(len(r["clips"]), 1)
        parts = {k: sum(c["timing"].get(k, 0.0) for c in r["clips"]) for k in ("decode", "generate", "encode", "write",
                                                                               "metrics")}
        table.add_row(method, str(len(r["clips"])), str(r["frames"]), f"{r['total']:.1f}", f"{r['total'] / n:.2f}",
                      *[f"{parts[k]:.1f} ({100 * parts[k] / r['total']:.0f}%)" for k in parts],
                      f"{r['set_seconds']:.1f} ({100 * r['set_seconds'] / r['total']:.0f}%)", r["protocol_id"])
    console.print(table)
    console.print("* encode: the encoders' own time, spent beside the metrics; write: what the clip then still waited")

    metrics, (decode, decode_cpu) = time_metrics(manifest, args.split, args.limit)
    table = Table(title="per metric (static predictions vs the clip, frames 1..T-1; a fresh single-metric Evaluator)")
    for col in ("metric", "first clip s", "steady s/clip", "ms/frame", "finalize s", "total s", "note"):
        table.add_column(col, justify="left" if col in ("metric", "note") else "right")
    direct = decode
    for metric, r in metrics.items():
        if r is None:
            table.add_row(metric, "", "", "", "", "", "weights missing (use --random-weights)")
            continue
        direct += r["total"]
        table.add_row(metric, f"{r['first']:.2f}", f"{r['steady']:.2f}", f"{1000 * r['total'] / r['frames']:.1f}",
                      f"{r['finalize']:.2f}", f"{r['total']:.1f}", "stand-in network" if metric in STAND_IN else "")
    console.print(table)
    static = runs["static"]
    task_metrics = {"psnr", "ssim", "lpips", "csim", "akd", "aed", "fid", "fvd"}
    reference = decode + sum(r["total"] for m, r in metrics.items() if r and m in task_metrics)
    reference_cpu = decode_cpu + sum(r["cpu"] for m, r in metrics.items() if r and m in task_metrics)
    table = Table(title="bench run static against its reference: decoding + the self-reenact metrics called directly")
    for col in ("measure", "reference s", "bench run s", "overhead s", "overhead %"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    for label, ref, ours in (("wall", reference, static["total"]), ("CPU (process + ffmpeg)", reference_cpu,
                                                                     static["cpu"])):
        table.add_row(label, f"{ref:.1f}", f"{ours:.1f}", f"{ours - ref:+.1f}", f"{100 * (ours - ref) / ref:+.1f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
