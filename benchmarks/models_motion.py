"""Speed of the motion model (AniTalker stage 1): training step and reenactment inference.

    python benchmarks/models_motion.py --device cpu                  # inference figures on this CPU
    PYTHONPATH=src python3 benchmarks/models_motion.py --device cuda  # + training: bf16, torch.compile, memory, MFU

Training rows run the real step of ``train_motion`` (generator with 4 encoded images per sample, VGG19 pyramid
perceptual loss with random weights so the compute is that of the real loss, GAN G and D steps, CLUB step) on
synthetic frames built from skimage's astronaut. MFU = model FLOPs per step (counted by torch's FlopCounterMode on
one eager step, backward included) / step time / the card's dense bf16 peak. Inference rows time
``ReenactModel.reenact`` on 256 px frames: batched throughput, and streaming (batch 1) per-frame latency.
The eager-vs-compile and fp32-vs-bf16 rows are the in-run references.

Streaming rows (``bench_streaming``) time one driver frame in, one frame out, after a warm-up, against
``ReenactModel.reenact(batch_size=1)`` as the in-run reference: the cached-source ``StreamingReenactor`` eager,
with the fused modulated conv, channels-last, torch.compile (first-call warm-up reported separately from the
steady state) and, on CUDA, a captured CUDA graph. p50/p95/p99 per frame, and the achieved FLOP rate (MFU on a
card with a known peak). On a CPU, run with ``--preset tiny`` to stay within minutes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from talkbench.models.inference import ReenactModel
from talkbench.models.losses import (AAMSoftmax, CLUB, PyramidPerceptualLoss, d_nonsaturating, g_nonsaturating,
                                     triplet_loss)
from talkbench.models.motion import Discriminator, MotionGenerator, get_config
from talkbench.models.train_motion import GeneratorStep

PEAK_BF16 = {"H200": 790e12, "H100": 989e12}  # dense bf16 tensor-core peak (SXM)


def card_peak(device: torch.device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16.items():
        if key in name:
            return name, peak
    return name, None


def astronaut_frames(n: int, size: int) -> np.ndarray:
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut())
    out = []
    for t in range(n):
        x0, y0, s = 90 + 10 * np.sin(t / 5), 20 + 6 * np.cos(t / 7), 300 + 15 * np.sin(t / 6)
        out.append(np.asarray(img.resize((size, size), Image.BICUBIC, box=(x0, y0, x0 + s, y0 + s))))
    return np.stack(out)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Step:
    """One full training step of train_motion.main, minus data loading and logging."""

    def __init__(self, preset: str, device: torch.device, compile: bool, amp: bool):
        cfg = get_config(preset)
        self.device, self.amp, self.size = device, amp and device.type == "cuda", cfg.size
        self.gen, self.disc = MotionGenerator(cfg).to(device), Discriminator(cfg).to(device)
        self.aam = AAMSoftmax(cfg.style_dim, 8).to(device)
        self.club = CLUB(cfg.style_dim, cfg.style_dim, cfg.head_hidden).to(device)
        self.gstep = GeneratorStep(self.gen, self.aam)
        self.perc = PyramidPerceptualLoss("vgg19-random").to(device)
        self.g_model, self.d_model = (torch.compile(self.gstep), torch.compile(self.disc)) if compile else (
            self.gstep, self.disc)
        self.g_opt = torch.optim.Adam(self.gstep.parameters(), lr=2e-3, betas=(0.9, 0.99))
        self.d_opt = torch.optim.Adam(self.disc.parameters(), lr=2e-3, betas=(0.0, 0.99))
        self.c_opt = torch.optim.Adam(self.club.parameters(), lr=1e-4)

    def batch(self, b: int) -> dict:
        frames = torch.from_numpy(astronaut_frames(4 * b, self.size)).permute(0, 3, 1, 2).float() / 127.5 - 1
        s, t, o, a = frames.to(self.device).chunk(4)
        return {"source": s, "target": t, "other": o, "aug": a, "label": torch.zeros(b, dtype=torch.long,
                device=self.device), "other_label": torch.ones(b, dtype=torch.long, device=self.device)}

    def __call__(self, bt: dict):
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else torch.autocast("cpu", enabled=False)
        self.disc.requires_grad_(False), self.club.requires_grad_(False)
        with ctx:
            recon, ident, motion = self.g_model(bt["source"], bt["target"], bt["other"], bt["aug"])
            i_s, i_t, i_o, i_a = ident.float().chunk(4)
            loss = ((recon.float() - bt["target"]).abs().mean() + self.perc(recon, bt["target"])
                    + g_nonsaturating(self.d_model(recon))
                    + 0.1 * self.aam(torch.cat([i_s, i_t, i_o]), torch.cat([bt["label"]] * 2 + [bt["other_label"]]))
                    + 0.1 * triplet_loss(i_s, i_a, i_o) + 0.01 * self.club(ident, motion))
        self.g_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.g_opt.step()
        self.disc.requires_grad_(True)
        with ctx:
            d_loss = d_nonsaturating(self.d_model(bt["target"]), self.d_model(recon.detach()))
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        self.club.requires_grad_(True)
        c_loss = self.club.learning_loss(ident.detach(), motion.detach())
        self.c_opt.zero_grad(set_to_none=True)
        c_loss.backward()
        self.c_opt.step()


def step_flops(preset: str) -> float:
    """FLOPs of one training step per sample (fwd + bwd, G, D and CLUB), counted on an eager fp32 CPU step."""
    from torch.utils.flop_counter import FlopCounterMode

    step = Step(preset, torch.device("cpu"), compile=False, amp=False)
    bt = step.batch(2)
    with FlopCounterMode(display=False) as counter:
        step(bt)
    return counter.get_total_flops() / 2


def frame_flops(preset: str) -> float:
    """FLOPs to reenact one frame: encode the driver frame, render from the cached source code."""
    from torch.utils.flop_counter import FlopCounterMode

    gen = MotionGenerator(get_config(preset)).requires_grad_(False)
    x = torch.zeros(1, 3, gen.cfg.size, gen.cfg.size)
    with FlopCounterMode(display=False) as counter:
        enc = gen.encoder(x)
        gen.render(enc.w, enc.alpha, enc.feats)
    return float(counter.get_total_flops())


def bench_train(args, device) -> list[tuple]:
    rows = []
    name, peak = card_peak(device)
    flops = step_flops(args.preset)
    print(f"model FLOPs per training sample ({args.preset}): {flops / 1e9:.1f} GFLOP")
    modes = [("fp32 eager", False, False), ("bf16 eager", False, True), ("bf16 compile", True, True)]
    if device.type != "cuda":
        modes = modes[:1]
    modes = [m for m in modes if args.train_modes is None or m[0] in args.train_modes]
    for label, comp, amp in modes:
        for b in args.train_batches:
            try:
                step = Step(args.preset, device, comp, amp)
                bt = step.batch(b)
                t0 = time.perf_counter()
                step(bt)  # the first step carries torch.compile's warm-up
                sync(device)
                first = time.perf_counter() - t0
                for _ in range(args.warmup - 1):
                    step(bt)
                sync(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                t = time.perf_counter()
                for _ in range(args.steps):
                    step(bt)
                sync(device)
                dt = (time.perf_counter() - t) / args.steps
                mem = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else float("nan")
                mfu = flops * b / dt / peak if peak else float("nan")
                rows.append((label, b, dt * 1e3, b / dt, mem, mfu, first))
            except torch.OutOfMemoryError:
                rows.append((label, b, float("nan"), float("nan"), float("inf"), float("nan"), float("nan")))
            finally:
                del step
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    print(f"\ntraining step, preset {args.preset}, device {name}")
    print(f"{'mode':<14}{'batch':>6}{'first step s':>13}{'ms/step':>10}{'samples/s':>11}{'peak GiB':>10}{'MFU':>8}")
    for label, b, ms, sps, mem, mfu, first in rows:
        print(f"{label:<14}{b:>6}{first:>13.1f}{ms:>10.1f}{sps:>11.1f}{mem:>10.2f}{mfu:>8.1%}")
    return rows


def bench_inference(args, device) -> None:
    cfg = get_config(args.preset)
    model = ReenactModel(MotionGenerator(cfg), device=device)
    frames = astronaut_frames(args.frames, cfg.size)
    source = frames[0]
    name, _ = card_peak(device)
    rows = []
    for b in args.infer_batches:
        list(model.reenact(source, frames[: 2 * b], batch_size=b))  # warm-up (cuDNN autotune, allocator)
        sync(device)
        t = time.perf_counter()
        n = sum(1 for _ in model.reenact(source, frames, batch_size=b))
        sync(device)
        dt = time.perf_counter() - t
        rows.append((f"batched {b}", n / dt, dt / n * 1e3))
    # streaming: one frame in, one frame out, the latency a live driver sees
    it = model.reenact(source, iter(frames), batch_size=1)
    next(it)
    lat = []
    for _ in range(min(args.frames - 1, args.stream_frames)):
        t = time.perf_counter()
        next(it)
        sync(device)
        lat.append(time.perf_counter() - t)
    lat_ms = np.array(lat) * 1e3
    rows.append(("streaming 1", 1e3 / lat_ms.mean(), lat_ms.mean()))
    flops = frame_flops(args.preset)
    print(f"\nreenactment inference, preset {args.preset} ({cfg.size} px), device {name}, "
          f"{flops / 1e9:.1f} GFLOP per frame (driver encoder + renderer)")
    print(f"{'mode':<14}{'frames/s':>10}{'ms/frame':>10}{'TFLOP/s':>9}")
    for label, fps, ms in rows:
        print(f"{label:<14}{fps:>10.1f}{ms:>10.2f}{fps * flops / 1e12:>9.2f}")
    print(f"streaming latency p50 {np.percentile(lat_ms, 50):.2f} ms, p95 {np.percentile(lat_ms, 95):.2f} ms "
          f"(targets on GPU: >= 200 frames/s batched, < 15 ms per streamed frame)")


def _latencies(fn, frames: torch.Tensor, device, warmup: int) -> tuple[float, np.ndarray]:
    """(first-call seconds, per-frame seconds after ``warmup`` more frames) of fn(frame) over the frames."""
    sync(device)
    t = time.perf_counter()
    fn(frames[:1])
    sync(device)
    first = time.perf_counter() - t
    for i in range(warmup):
        fn(frames[i % len(frames)][None])
    lat = []
    for i in range(len(frames)):
        sync(device)
        t = time.perf_counter()
        fn(frames[i][None])
        sync(device)
        lat.append(time.perf_counter() - t)
    return first, np.array(lat)


def bench_streaming(args, device) -> list[tuple]:
    """Streamed reenactment latency: the reference path, then the cached source with each speed tool."""
    import copy

    from talkbench.models.layers import set_fused, to_channels_last
    from talkbench.models.streaming import StreamingReenactor

    cfg = get_config(args.preset)
    torch.manual_seed(0)
    base = MotionGenerator(cfg).eval().requires_grad_(False)
    frames_np = astronaut_frames(args.stream_frames + 1, cfg.size)
    frames = (torch.from_numpy(frames_np).permute(0, 3, 1, 2).float() / 127.5 - 1).to(device)
    amp = torch.bfloat16 if device.type == "cuda" else None
    name, peak = card_peak(device)
    flops = frame_flops(args.preset)
    rows = []

    print(f"\nstreaming reenactment (1 frame in, 1 out), preset {args.preset} ({cfg.size} px), device {name}, "
          f"{flops / 1e9:.2f} GFLOP per frame; first call = warm-up (compile, capture)")
    print(f"| {'path':<28} | {'first s':>7} | {'p50 ms':>7} | {'p95 ms':>7} | {'p99 ms':>7} | {'frames/s':>8} | "
          f"{'TFLOP/s':>7} | {'MFU':>6} |")
    print(f"|{'-' * 30}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 10}|{'-' * 9}|{'-' * 8}|", flush=True)

    def report(label, first, lat):  # printed as soon as measured: a time-boxed run keeps what it finished
        rows.append((label, first, lat))
        if isinstance(lat, str):
            print(f"| {label:<28} | {'':>7} | failed: {lat}", flush=True)
            return
        ms = lat * 1e3
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        fps = 1e3 / ms.mean()
        mfu = f"{flops * fps / peak:.1%}" if peak else "n/a"
        print(f"| {label:<28} | {first:>7.2f} | {p50:>7.2f} | {p95:>7.2f} | {p99:>7.2f} | {fps:>8.1f} | "
              f"{flops * fps / 1e12:>7.3f} | {mfu:>6} |", flush=True)

    # reference: ReenactModel.reenact at batch 1 (uint8 in and out, as a live caller would use it)
    model = ReenactModel(copy.deepcopy(base), device=device)
    it = model.reenact(frames_np[0], iter(list(frames_np[1:]) * 2), batch_size=1)
    first, lat = _latencies(lambda _: next(it), frames[1:], device, args.warmup)
    report("ReenactModel.reenact (ref.)", first, lat)

    def variant(label, fused=False, channels_last=False, compile=False, graph=False):
        gen = copy.deepcopy(base).to(device)
        if fused:
            set_fused(gen, True)
        src, drv = frames[:1], frames[1:]
        if channels_last:
            to_channels_last(gen)
            src, drv = (x.contiguous(memory_format=torch.channels_last) for x in (src, drv))
        stream = StreamingReenactor(gen, relative=True, amp_dtype=amp).to(device)
        stream.set_source(src)
        stream(drv[:1])  # first-frame reference of the relative motion
        if compile:
            stream.step = torch.compile(stream.step, fullgraph=False, dynamic=False, mode=args.compile_mode)
        if graph:
            stream.use_cuda_graph(drv[:1])
        try:
            first, lat = _latencies(stream, drv, device, args.warmup)
            report(label, first, lat)
        except Exception as exc:  # noqa: BLE001 - a failing tool is a row that says why, not a lost table
            report(label, float("nan"), f"{type(exc).__name__}: {str(exc).splitlines()[0][:60]}")

    variant("cached source, eager")
    variant("cached + fused modconv", fused=True)
    variant("cached + channels-last", channels_last=True)
    if not args.no_compile:
        variant("cached + torch.compile", compile=True)
    if device.type == "cuda":
        variant("cached + CUDA graph", graph=True)
        variant("cached + fused + CUDA graph", fused=True, graph=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--preset", default="base")
    p.add_argument("--train", action="store_true", help="also time training steps (default on CUDA)")
    p.add_argument("--train-batches", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--infer-batches", type=int, nargs="+", default=None)
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--stream-frames", type=int, default=None)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (1 on a shared CPU box)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile streaming row")
    p.add_argument("--train-modes", nargs="+", default=None,
                   help="training rows to run: 'fp32 eager', 'bf16 eager', 'bf16 compile' (default: all on CUDA)")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode for streaming (e.g. max-autotune)")
    p.add_argument("--skip-batched", action="store_true", help="only the streaming table (and training on CUDA)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    args.infer_batches = args.infer_batches or ([16, 32, 64] if gpu else [8])
    args.frames = args.frames or (512 if gpu else 32)
    args.stream_frames = args.stream_frames or (200 if gpu else 16)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {card_peak(device)[0]}")
    if not args.skip_batched:
        bench_inference(args, device)
    bench_streaming(args, device)
    if gpu or args.train:
        bench_train(args, device)


if __name__ == "__main__":
    main()
