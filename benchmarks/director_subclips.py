"""Sub-clips between keyframes denoised in one batch, against one at a time, for 1- and 5-minute speeches (CPU).

The denoiser is a stand-in until `generate directed` wires in the speech-driven model: a small random-weight
Conv1d network over 20-d motion, DDIM-style steps with the clamped frames replaced at every step. What the table
shows is the batching: wall time and peak memory of the one batched pass against the sub-clip-by-sub-clip loop
(the reference, same run). Each configuration runs in a fresh child process so its peak RSS is its own.

    PYTHONPATH=src python benchmarks/director_subclips.py [--steps 20] [--minutes 1 5]

Rows "tiny a2m" run the real pipeline (``models.directed.directed_motion``: blueprint, keyframes, sub-clips) with
the tiny audio2motion preset (random init: speed and memory do not depend on training) on espeak-ng speech tiled to
the length; the sub-clip column times ``denoise_subclips`` with ``subclip_sampler`` alone.
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


def one_a2m(minutes: float, mode: str, steps: int) -> dict:
    import tempfile
    from pathlib import Path

    from talkbench.director.plan import make_plan
    from talkbench.media import read_audio
    from talkbench.models.audio2motion import Audio2Motion, get_config
    from talkbench.models.directed import DirectedConfig, directed_motion

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), "Talking heads follow the speech. Then they pause, and nod."],
                       check=True, capture_output=True)
        unit = read_audio(wav, 16000)
    n_samples = int(minutes * 60 * 16000)
    samples = np.tile(unit, n_samples // len(unit) + 1)[:n_samples]
    torch.manual_seed(0)
    model = Audio2Motion(get_config("tiny")).eval().requires_grad_(False)
    plan = make_plan(samples, "")
    cfg = DirectedConfig(steps=steps, blueprint_steps=max(1, steps // 2))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = directed_motion(model, samples, plan, torch.zeros(1, 20), torch.zeros(1, 64), cfg,
                          batched=(mode == "batched"))
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"minutes": minutes, "mode": mode, "frames": out["n_frames"], "subclips": len(out["keyframes"]) - 1,
            "wall_s": wall, "subclips_s": out["timing"]["subclips_s"], "blueprint_s": out["timing"]["blueprint_s"],
            "peak_mb": peak / 1024, "extra_mb": (peak - base) / 1024, "finite": bool(torch.isfinite(out["motion"]).all())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--model", choices=["stand-in", "a2m", "both"], default="both")
    parser.add_argument("--one", nargs=2, metavar=("MINUTES", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--one-a2m", nargs=2, metavar=("MINUTES", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(float(args.one[0]), args.one[1], args.steps)))
        return
    if args.one_a2m:
        print(json.dumps(one_a2m(float(args.one_a2m[0]), args.one_a2m[1], args.steps)))
        return
    if args.model in ("a2m", "both"):
        a2m_rows = []
        for minutes in args.minutes:
            for mode in ("sequential", "batched"):
                proc = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--one-a2m",
                                       str(minutes), mode], check=True, capture_output=True, text=True)
                a2m_rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"tiny audio2motion (random init), {args.steps} sub-clip DDIM steps, blueprint {max(1, args.steps // 2)}"
              f", 1 CPU thread, torch {torch.__version__}")
        print("| speech | mode | frames | sub-clips | sub-clips s | blueprint s | total s | peak RSS MB | over baseline MB |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in a2m_rows:
            print(f"| {r['minutes']:g} min | {r['mode']} | {r['frames']} | {r['subclips']} | {r['subclips_s']:.2f} | "
                  f"{r['blueprint_s']:.2f} | {r['wall_s']:.2f} | {r['peak_mb']:.0f} | {r['extra_mb']:.1f} |")
        if args.model == "a2m":
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
