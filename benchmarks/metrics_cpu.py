"""CPU throughput of the metrics, each against its reference computed in the same run.

- PSNR, SSIM and both vs skimage on the same real 256x256 frames (values must agree to 1e-6), on ONE thread
  (OMP/MKL/OPENBLAS/OpenCV/torch all set to 1), reference and ours interleaved, best of --repeat rounds, in
  CPU time of this process (a shared machine's load inflates wall time of both sides unevenly).
- LPIPS, FID-feature (Inception) and SyncNet: batched vs one-at-a-time (random weights: speed only), and the
  batched AV-offset search vs syncnet_python's per-window loop.

Run: python benchmarks/metrics_cpu.py [--frames 48] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # before numpy/torch load their pools
    os.environ[_var] = "1"

import numpy as np
import torch
import torch.nn.functional as F


def timed(fn, repeat: int = 1):
    fn()  # warm-up (lazy imports, allocator)
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - start) / repeat, out


def real_frames(n: int, size: int = 256, seed: int = 0):
    from skimage import data

    rng = np.random.default_rng(seed)
    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    pred, gt = [], []
    for i in range(n):
        img = sources[i % len(sources)]
        y, x = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        crop = img[y:y + size, x:x + size]
        gt.append(crop)
        pred.append(np.clip(crop.astype(int) + rng.integers(-12, 13, crop.shape), 0, 255).astype(np.uint8))
    return np.stack(pred), np.stack(gt)


def interleaved(fns: dict, rounds: int) -> dict:
    """Best CPU time of each function over ``rounds`` rounds, the functions taking turns within each round."""
    best = {k: float("inf") for k in fns}
    for fn in fns.values():
        fn()  # warm-up (lazy imports, workspaces)
    for _ in range(rounds):
        for k, fn in fns.items():
            start = time.process_time()
            fn()
            best[k] = min(best[k], time.process_time() - start)
    return best


def bench_pixel(n: int, threads: int, rounds: int) -> list[tuple]:
    import cv2
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from talkbench.metrics.pixel import psnr_frames, ssim_frames

    pred, gt = real_frames(n)
    p, g = torch.from_numpy(pred), torch.from_numpy(gt)
    def sk_psnr():
        return [peak_signal_noise_ratio(b, a, data_range=255) for a, b in zip(pred, gt)]

    def sk_ssim():
        return [structural_similarity(b, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      data_range=255, channel_axis=-1) for a, b in zip(pred, gt)]
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    t = interleaved({"sk_psnr": sk_psnr, "sk_ssim": sk_ssim, "psnr": lambda: psnr_frames(p, g),
                     "ssim": lambda: ssim_frames(p, g), "ssim64": lambda: ssim_frames(p, g, backend="ndimage")},
                    rounds)
    ref_psnr, ref_ssim = np.array(sk_psnr()), np.array(sk_ssim())
    d_psnr = float(np.abs(psnr_frames(p, g).numpy() - ref_psnr).max())
    d_ssim = float(np.abs(ssim_frames(p, g).numpy() - ref_ssim).max())
    d_ssim64 = float(np.abs(ssim_frames(p, g, backend="ndimage").numpy() - ref_ssim).max())
    both_ref, both = t["sk_psnr"] + t["sk_ssim"], t["psnr"] + t["ssim"]
    rows = [("PSNR (1 thread)", "skimage (reference)", n / t["sk_psnr"], 1.0, 0.0),
            ("PSNR (1 thread)", "talkbench exact SSE", n / t["psnr"], t["sk_psnr"] / t["psnr"], d_psnr),
            ("SSIM (1 thread)", "skimage (reference)", n / t["sk_ssim"], 1.0, 0.0),
            ("SSIM (1 thread)", "talkbench float64 ndimage", n / t["ssim64"], t["sk_ssim"] / t["ssim64"], d_ssim64),
            ("SSIM (1 thread)", "talkbench float32 tiles", n / t["ssim"], t["sk_ssim"] / t["ssim"], d_ssim),
            ("PSNR+SSIM (1 thread)", "skimage (reference)", n / both_ref, 1.0, 0.0),
            ("PSNR+SSIM (1 thread)", "talkbench", n / both, both_ref / both, max(d_psnr, d_ssim))]
    if threads > 1:
        cv2.setNumThreads(threads)
        t_many, _ = timed(lambda: ssim_frames(p, g, threads=threads))
        t_one, _ = timed(lambda: [sk_ssim()])
        rows.append(("SSIM (wall time)", f"talkbench ({threads} threads)", n / t_many, t_one / t_many, d_ssim))
    return rows


def bench_network(name: str, n: int, batch: int, one, many) -> list[tuple]:
    t_one, _ = timed(one)
    t_many, _ = timed(many)
    return [(name, "one at a time", n / t_one, 1.0, None), (name, f"batched ({batch})", n / t_many, t_one / t_many, None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                        help="SSIM frame threads for the extra wall-time row (1: no such row)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds for the 1-thread rows")
    parser.add_argument("--pixel-only", action="store_true", help="only the PSNR/SSIM rows")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default); 1 avoids spin-wait losses on a busy machine")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = bench_pixel(args.frames, args.threads, args.repeat)
    if args.pixel_only:
        print_table(rows)
        return
    torch.set_num_threads(args.torch_threads or os.cpu_count() or 1)

    from talkbench.metrics.lpips import LPIPSNet
    from talkbench.metrics.nets.inception import FIDInceptionV3
    from talkbench.metrics.nets.syncnet import SyncNet
    from talkbench.metrics.sync import offset_distances

    n = 16
    x = torch.rand(n, 3, 256, 256) * 2 - 1
    y = torch.rand(n, 3, 256, 256) * 2 - 1
    lp = LPIPSNet("alex")
    with torch.no_grad():
        rows += bench_network("LPIPS-alex 256px", n, n, lambda: [lp(x[i:i + 1], y[i:i + 1]) for i in range(n)],
                              lambda: lp(x, y))
        inc = FIDInceptionV3().eval()
        xi = torch.rand(8, 3, 256, 256)
        rows += bench_network("FID Inception 299px", 8, 8, lambda: [inc(xi[i:i + 1]) for i in range(8)], lambda: inc(xi))
        sn = SyncNet().eval()
        video = torch.rand(3, 20, 224, 224) * 255
        windows = torch.stack([video[:, i:i + 5] for i in range(16)])
        rows += bench_network("SyncNet lip windows", 16, 16, lambda: [sn.forward_lip(windows[i:i + 1]) for i in range(16)],
                              lambda: sn.forward_lip(windows))
    feats_v, feats_a = torch.randn(250, 1024), torch.randn(250, 1024)

    def loop():  # syncnet_python's calc_pdist
        padded = F.pad(feats_a, (0, 0, 15, 15))
        return [F.pairwise_distance(feats_v[[i], :].repeat(31, 1), padded[i:i + 31, :]) for i in range(250)]

    t_loop, _ = timed(loop, 5)
    t_batch, _ = timed(lambda: offset_distances(feats_v, feats_a, 15), 5)
    rows += [("AV offset search (250 win)", "per-window loop (reference)", 250 / t_loop, 1.0, None),
             ("AV offset search (250 win)", "batched gather", 250 / t_batch, t_loop / t_batch, None)]

    print_table(rows)


def print_table(rows: list[tuple]) -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"| {'metric':<28} | {'implementation':<28} | {'frames/s':>10} | {'speed-up':>8} | {'max |diff|':>10} |")
    print(f"|{'-' * 30}|{'-' * 30}|{'-' * 12}|{'-' * 10}|{'-' * 12}|")
    for metric, impl, fps, speedup, diff in rows:
        d = "" if diff is None else f"{diff:.1e}"
        print(f"| {metric:<28} | {impl:<28} | {fps:>10.1f} | {speedup:>7.2f}x | {d:>10} |")


if __name__ == "__main__":
    main()
