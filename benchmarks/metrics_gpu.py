"""GPU throughput of the metrics and one full `metrics compute`-sized run (100 clips x 10 s at 256x256).

Real weights cannot be downloaded on the GPU machine, so every network is a random-weight file written in its
official format (talkbench.metrics.random_weights) and installed with --unverified: speed only, never accuracy. FID and
SyncNet use the real architectures; the clean-FID Inception and I3D random_weights are tiny TorchScript stand-ins, so their
rows are not representative of the real networks' cost. Metrics that need MediaPipe (face/hand landmarks) run on
the CPU and are left out when mediapipe is not installed.

Run: python benchmarks/metrics_gpu.py [--clips 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
import torch


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def per_metric(device: str, n: int = 256) -> list[tuple[str, float]]:
    from talkbench.metrics.lpips import LPIPSNet
    from talkbench.metrics.nets.inception import FIDInceptionV3
    from talkbench.metrics.nets.syncnet import SyncNet
    from talkbench.metrics.pixel import psnr_frames, ssim_frames

    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)).to(device)
    b = torch.from_numpy(rng.integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)).to(device)
    rows = []

    def run(name, fn, frames):
        fn()
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        rows.append((name, frames / (time.perf_counter() - start)))

    run("PSNR (uint8 RGB)", lambda: psnr_frames(a, b), n)
    run("SSIM float64 GEMM (default)", lambda: ssim_frames(a, b, backend="matmul"), n)
    run("SSIM float64 conv (previous)", lambda: ssim_frames(a, b, backend="conv"), n)
    ref = ssim_frames(a[:8].cpu(), b[:8].cpu(), backend="ndimage")  # same values, 1e-6: the float64 CPU reference
    for backend in ("matmul", "conv"):
        diff = float((ssim_frames(a[:8], b[:8], backend=backend).cpu() - ref).abs().max())
        print(f"SSIM {backend} on {device}: max |diff| vs the CPU float64 reference {diff:.1e}")
    lp = LPIPSNet("alex").to(device)
    x = a.permute(0, 3, 1, 2).float() / 127.5 - 1
    y = b.permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        run(f"LPIPS-alex (batch {n})", lambda: lp(x, y), n)
        inc = FIDInceptionV3().to(device).eval()
        run(f"FID Inception pool3 (batch {n})", lambda: inc(x * 0.5 + 0.5), n)
        sn = SyncNet().to(device).eval()
        k = min(n, 128)
        windows = torch.rand(k, 3, 5, 224, 224, device=device) * 255
        mf = torch.randn(k, 1, 13, 20, device=device)
        run(f"SyncNet lip+audio windows (batch {k})", lambda: (sn.forward_lip(windows), sn.forward_aud(mf)), k)
    return rows


def full_run(device: str, clips: int, seconds: float, metrics: list[str]) -> tuple[float, list[dict], dict]:
    from talkbench.metrics.evaluate import Evaluator
    from talkbench.metrics.sync import AUDIO_RATE

    frames_per_clip = int(25 * seconds)
    rng = np.random.default_rng(0)
    from skimage import data
    from PIL import Image

    base = np.asarray(Image.fromarray(data.astronaut()[0:300, 80:380]).resize((256, 256), Image.BICUBIC))
    evaluator = Evaluator("talkbench-v1-256", metrics=metrics, device=device, face_cropped=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    rows = []
    for c in range(clips):
        shifts = rng.integers(-3, 4, size=(frames_per_clip, 2))
        pred = np.stack([np.roll(base, tuple(s), axis=(0, 1)) for s in shifts])
        gt = np.roll(pred, 1, axis=2)
        audio = (rng.normal(size=int(seconds * AUDIO_RATE)) * 0.05).astype(np.float32)
        rows += evaluator.add_video(f"clip{c:03d}", pred, gt, audio=audio)
        if (c + 1) % 10 == 0:
            print(f"  {c + 1} clips scored, {time.perf_counter() - start:.1f} s", flush=True)
    t_videos = time.perf_counter() - start
    rows += evaluator.finalize()
    total = time.perf_counter() - start
    timings.update(videos=t_videos, finalize=total - t_videos, total=total)
    return total, rows, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--per-metric-frames", type=int, default=256, help="frames per per-metric measurement")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="tb-gpu-bench-")
    os.environ["TALKBENCH_HOME"] = home
    from talkbench.metrics import random_weights

    random_weights.install_random(["alexnet", "lpips-alex", "fid-inception", "clean-fid-inception", "i3d", "syncnet"])
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"device {name}, torch {torch.__version__}, ffmpeg {'yes' if shutil.which('ffmpeg') else 'NO'}")
    print(f"| {'metric':<40} | {'frames/s':>10} |")
    print(f"|{'-' * 42}|{'-' * 12}|")
    for metric, fps in per_metric(args.device, args.per_metric_frames):
        print(f"| {metric:<40} | {fps:>10.0f} |")
    if args.skip_full:
        return
    metrics = ["psnr", "ssim", "lpips", "fid", "fvd", "sync_c", "sync_d", "av_offset"]
    if not shutil.which("ffmpeg"):
        print("ffmpeg missing: Sync left out of the full run (its protocol JPEG path needs ffmpeg)")
        metrics = [m for m in metrics if m not in ("sync_c", "sync_d", "av_offset")]
    total, rows, timings = full_run(args.device, args.clips, args.seconds, metrics)
    frames = args.clips * int(25 * args.seconds)
    print(f"\nfull run: {args.clips} clips x {args.seconds:.0f} s at 256x256 ({frames} frames pred + gt), "
          f"metrics {','.join(metrics)}")
    print(f"| {'phase':<24} | {'seconds':>8} |")
    print(f"|{'-' * 26}|{'-' * 10}|")
    for phase, seconds in timings.items():
        print(f"| {phase:<24} | {seconds:>8.1f} |")
    nulls = [r for r in rows if r["value"] is None]
    print(f"rows {len(rows)}, null {len(nulls)}" + (f" (e.g. {nulls[0]['metric']}: {nulls[0]['null_reason']})" if nulls else ""))
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
