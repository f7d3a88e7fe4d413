"""Speed of the speech → motion model (AniTalker stage 2): sampler cost per second of speech, the whole chain
(features → motion → rendering → mp4) against the real-time line of 25 fps, and (GPU) training steps at batch 64.

    PYTHONPATH=src python benchmarks/models_audio2motion.py --device cpu --preset tiny
    PYTHONPATH=src python benchmarks/models_audio2motion.py --device cuda --preset paper   # + training rows

Random-init weights (speed does not depend on training). Speech is espeak-ng, repeated to the requested length.
The reference row in the same run is real time: 25 frames per second of speech.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from talkbench.models.audio2motion import Audio2Motion, get_config
from talkbench.models.audio_features import mfcc_features
from talkbench.models.motion import MotionGenerator
from talkbench.models.motion import get_config as motion_config


def speech(seconds: float) -> np.ndarray:
    from talkbench.media import read_audio

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), "Talking heads need good lip sync. The quick brown fox jumps "
                        "over the lazy dog, and then it runs away."], check=True, capture_output=True)
        audio = read_audio(wav, 16000)
    return np.tile(audio, int(np.ceil(seconds * 16000 / len(audio))))[: int(seconds * 16000)]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--seconds", type=float, default=10.0)
    a = p.parse_args()
    device = torch.device(a.device)
    cfg = get_config(a.preset)
    model = Audio2Motion(cfg).to(device).eval()
    audio = speech(a.seconds)
    t0 = time.perf_counter()
    feats = torch.from_numpy(mfcc_features(audio))[None].to(device)
    t_feat = time.perf_counter() - t0
    n = feats.shape[1] // 4
    hint, ident = torch.zeros(1, 20, device=device), torch.zeros(1, cfg.identity_dim, device=device)
    rows = [("real time (reference)", a.seconds, n / a.seconds)]
    rows.append(("MFCC features", t_feat, n / t_feat))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                          enabled=False)
    for steps in (50, 20):
        for mode in ("windowed", "single"):
            with autocast:
                model.generate(feats[:, :400], hint, ident, steps=2, mode=mode)  # warm-up
                sync(device)
                t0 = time.perf_counter()
                model.generate(feats, hint, ident, steps=steps, mode=mode)
                sync(device)
            dt = time.perf_counter() - t0
            rows.append((f"sampler DDIM {steps} ({mode})", dt, n / dt))
    gen = MotionGenerator(motion_config(cfg.motion_preset)).to(device).eval()
    size = gen.cfg.size
    src = torch.zeros(1, 3, size, size, device=device)
    with torch.inference_mode(), autocast:
        enc = gen.encoder(src)
        alpha = torch.zeros(n, 20, device=device)
        sync(device)
        t0 = time.perf_counter()
        for i in range(0, n, 32):
            b = min(32, n - i)
            gen.render(enc.w.expand(b, -1), alpha[i:i + b], [f.expand(b, -1, -1, -1) for f in enc.feats])
        sync(device)
    dt = time.perf_counter() - t0
    rows.append((f"rendering {size} px (batch 32)", dt, n / dt))
    chain = t_feat + dict((r[0], r[1]) for r in rows)["sampler DDIM 20 (windowed)"] + dt
    rows.append(("chain: features + DDIM 20 + render (no mp4)", chain, n / chain))
    print(f"{a.seconds:.0f} s of speech = {n} frames; device {device}; preset {a.preset}")
    print(f"{'stage':48s} {'seconds':>9s} {'frames/s':>10s}")
    for name, sec, fps in rows:
        print(f"{name:48s} {sec:9.3f} {fps:10.1f}")


if __name__ == "__main__":
    main()
