"""Sub-clips between keyframes denoised in one batch, against one at a time, for 1- and 5-minute speeches (CPU).

The denoiser is a stand-in until `generate directed` wires in the speech-driven model: a small random-weight
Conv1d network over 20-d motion, DDIM-style steps with the clamped frames replaced at every step. What the table
shows is the batching: wall time and peak memory of the one batched pass against the sub-clip-by-sub-clip loop
(the reference, same run). Each configuration runs in a fresh child process so its peak RSS is its own.

    PYTHONPATH=src python benchmarks/director_subclips.py [--steps 20] [--minutes 1 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch


def stand_in_sampler(steps: int, dim: int = 20, hidden: int = 64):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(dim, hidden, 5, padding=2), torch.nn.SiLU(),
                              torch.nn.Conv1d(hidden, hidden, 5, padding=2), torch.nn.SiLU(),
                              torch.nn.Conv1d(hidden, dim, 5, padding=2)).eval()

    @torch.no_grad()
    def sampler(noise, known, clamp, valid, cond):
        x = noise.clone()
        m = clamp[..., None]
        for i in range(steps):
            a = (i + 1) / steps  # signal fraction of this step
            x = torch.where(m, a * known + (1 - a) * noise, x)
            x = x - 0.1 * net(x.transpose(1, 2)).transpose(1, 2)
            x = x * valid[..., None]  # padding stays zero
        return torch.where(m, known, x)

    return sampler


def one(minutes: float, mode: str, steps: int) -> dict:
    from talkbench.director.keyframes import KeyframeConfig, choose_keyframes
    from talkbench.director.subclips import denoise_subclips

    torch.set_num_threads(1)
    n = int(round(minutes * 60 * 25))
    rng = np.random.default_rng(0)
    bp = {"yaw": 10 * np.sin(np.arange(n) / 40), "pitch": rng.standard_normal(n), "roll": np.zeros(n),
          "scale": np.full(n, 0.4), "centre": np.full((n, 2), 0.5), "clarity": np.ones(n)}
    keys, _ = choose_keyframes(bp, KeyframeConfig(min_gap=25, max_gap=75))
    motion = torch.as_tensor(rng.standard_normal((n, 20)), dtype=torch.float32)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if mode == "whole":  # the AniTalker way: one pass over the whole length, first and last frames clamped
        out = denoise_subclips(stand_in_sampler(steps), motion, [0, n - 1], seed=0)
    else:
        out = denoise_subclips(stand_in_sampler(steps), motion, keys, seed=0, batched=(mode == "batched"))
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"minutes": minutes, "mode": mode, "frames": n, "subclips": len(keys) - 1, "wall_s": wall,
            "peak_mb": peak / 1024, "extra_mb": (peak - base) / 1024, "finite": bool(torch.isfinite(out).all())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--one", nargs=2, metavar=("MINUTES", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(float(args.one[0]), args.one[1], args.steps)))
        return
    rows = []
    for minutes in args.minutes:
        for mode in ("sequential", "batched", "whole"):
            proc = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--one", str(minutes), mode],
                                  check=True, capture_output=True, text=True)
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"stand-in denoiser, {args.steps} steps, 1 CPU thread, torch {torch.__version__}")
    print("| speech | mode | frames | sub-clips | wall s | peak RSS MB | RSS over baseline MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['minutes']:g} min | {r['mode']} | {r['frames']} | {r['subclips']} | {r['wall_s']:.2f} | "
              f"{r['peak_mb']:.0f} | {r['extra_mb']:.1f} |")


if __name__ == "__main__":
    main()
