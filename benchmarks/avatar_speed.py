"""Speed of upper-body avatar generation (ChatAnyone recipe): streaming end to end (audio chunk in → face motion
DiT → body/hands → keypoint renderer → frames out), per preset and device, against ChatAnyone's reported 30 fps at
512×768 on one RTX 4090 and the real-time line of 25 fps, both printed in the same table.

    PYTHONPATH=src python benchmarks/avatar_speed.py --preset tiny --device cpu --seconds 4
    PYTHONPATH=src python benchmarks/avatar_speed.py --preset paper --device cuda --seconds 10   # GPU rows

Random-init weights (speed does not depend on training). Per-frame latency of a chunk = chunk wall time / frames in
it (a frame is out when its chunk is); first-frame latency = time from the first audio chunk in to its frames out.
No CUDA here → the GPU rows are printed as "unmeasured", never estimated.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from talkbench.models import body_hands, face_dit, kp_renderer
from talkbench.models.avatar import AvatarModels, Source, stream

CHATANYONE_FPS = 30.0  # reported: 512×768, one RTX 4090 (MODELS.md §2)


def speech(seconds: float) -> np.ndarray:
    from talkbench.media import read_audio

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), "Talking heads need good lip sync. The quick brown fox jumps "
                        "over the lazy dog, and then it runs away."], check=True, capture_output=True)
        audio = read_audio(wav, 16000)
    return np.tile(audio, int(np.ceil(seconds * 16000 / len(audio))))[: int(seconds * 16000)]


def build(preset: str, device: str) -> AvatarModels:
    torch.manual_seed(0)
    face = face_dit.FaceDiT(face_dit.get_config(preset))
    body = body_hands.BodyHands(body_hands.get_config(preset))
    render = kp_renderer.KeypointRenderer(kp_renderer.get_config(preset))
    return AvatarModels(face.to(device).eval(), body.to(device).eval(), render.to(device).eval())


def run(preset: str, device: str, seconds: float, chunk: int, steps: int) -> dict:
    models = build(preset, device)
    e = models.face.cfg.expr_dim
    body = np.stack([np.linspace(-0.5, 0.5, 9), np.zeros(9)], 1).astype(np.float32)  # any pose: speed only
    h, w = models.render.cfg.size
    src = Source(models, np.full((h, w, 3), 120, np.uint8), np.zeros((1, e + 6), np.float32), body,
                 np.zeros((2, 21, 2), np.float32))
    audio = speech(seconds)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in stream(models, src, audio[:16000], chunk=chunk, steps=steps):  # warm-up
        pass
    sync()
    per_frame, first, frames = [], None, 0
    t0 = t_prev = time.perf_counter()
    for imgs, _ in stream(models, src, audio, chunk=chunk, steps=steps):
        sync()
        now = time.perf_counter()
        first = now - t0 if first is None else first
        per_frame += [(now - t_prev) / len(imgs)] * len(imgs)
        frames += len(imgs)
        t_prev = now
    total = time.perf_counter() - t0
    return {"fps": frames / total, "p95_ms": 1000 * float(np.percentile(per_frame, 95)), "first_ms": 1000 * first,
            "frames": frames, "size": f"{w}×{h}"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny", choices=sorted(face_dit.PRESETS.keys() & kp_renderer.PRESETS.keys()))
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--chunk", type=int, default=10, help="frames per audio chunk (10 = 0.4 s)")
    p.add_argument("--steps", type=int, default=10, help="DDIM steps of the face motion per chunk")
    a = p.parse_args()
    print(f"| method | device | size | steps | chunk | fps | p95 ms/frame | first-frame ms |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| ChatAnyone (reported) | RTX 4090 | 512×768 | – | – | {CHATANYONE_FPS:.0f} | – | – |")
    print("| real time | – | – | – | – | 25 | 40 | – |")
    if a.device == "cuda" and not torch.cuda.is_available():
        print(f"| ours ({a.preset}) | cuda | – | – | – | unmeasured (no CUDA device) | – | – |")
        return
    r = run(a.preset, a.device, a.seconds, a.chunk, a.steps)
    print(f"| ours ({a.preset}) | {a.device} ({torch.get_num_threads()} threads) | {r['size']} | {a.steps} | "
          f"{a.chunk} | {r['fps']:.2f} | {r['p95_ms']:.0f} | {r['first_ms']:.0f} |")
    if a.device == "cpu" and not torch.cuda.is_available():
        print("| ours (paper) | cuda | 512×768 | – | – | unmeasured (no CUDA device here) | – | – |")


if __name__ == "__main__":
    main()
