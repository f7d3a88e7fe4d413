"""CLI for speech-driven talking heads: `talkbench train audio2motion`, `generate speech` (targets: `extract-targets`, in cli/targets.py).

Each function is a thin typer command; ``register`` adds them to the ``train`` and ``generate`` groups of
``cli/models.py`` and to the root app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import console


def train_audio2motion(
    manifest: Path = typer.Option(..., help="clips.parquet (train-split clips are used; test clips are never read)"),
    motion_checkpoint: Path = typer.Option(..., help="the stage-1 motion checkpoint the latents were extracted with"),
    out: Path = typer.Option(..., help="run folder: last.pt, log.jsonl, tb/ (TensorBoard)"),
    preset: Optional[str] = typer.Option(None, help="paper (AniTalker sizes, MFCC) | paper-hubert | tiny (CPU) | "
                                                    "tiny-* (CPU variants; `talkbench models summary audio2motion "
                                                    "--preset P` names the stage-1 preset each reads) [default: "
                                                    "TrainConfig.preset, paper]"),
    latents: Optional[Path] = typer.Option(None, help="motion_latents.parquet (default: beside the manifest)"),
    targets: Optional[Path] = typer.Option(None, help="motion_targets.parquet (default: beside the manifest)"),
    max_steps: Optional[int] = typer.Option(None, help="stop after this many steps, counted across resumes "
                                                       "[default: TrainConfig.max_steps]"),
    batch_size: Optional[int] = typer.Option(None, help="windows per step and per GPU [default: TrainConfig]"),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate [default: TrainConfig, AniTalker's 1e-4]"),
    window: Optional[int] = typer.Option(None, help="frames per window [default: the preset's, 125]"),
    mouth_weight: Optional[float] = typer.Option(None, help="extra ε-loss weight along the codes' mouth direction "
                                                            "(a probe to the targets' lip gap) [default: 0, off]"),
    hint_random: Optional[float] = typer.Option(None, help="probability that a window's hint is a random frame of its "
                                                           "clip, not the one before it [default: 0]"),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda [default: auto]"),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the decoder"),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT/last.pt (same architecture required)"),
    seed: Optional[int] = typer.Option(None, help="data-order and init seed [default: 0]"),
    log_every: Optional[int] = typer.Option(None, help="log scalars every N steps [default: TrainConfig]"),
    ckpt_every: Optional[int] = typer.Option(None, help="write OUT/last.pt every N steps and at the end "
                                                        "[default: TrainConfig]"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Train the speech → motion diffusion (AniTalker stage 2). Under torchrun, use
    `python -m talkbench.models.train_audio2motion` with the same flags."""
    from ..models.audio2motion import get_config
    from ..models.train_audio2motion import TrainConfig, main

    if preset is None:
        preset = TrainConfig.__dataclass_fields__["preset"].default
    get_config(preset)  # fail on a bad preset before reading any data
    # defaults live once, in TrainConfig: only the options given on the command line are passed
    given = {"max_steps": max_steps, "batch_size": batch_size, "lr": lr, "window": window, "device": device,
             "mouth_weight": mouth_weight, "hint_random": hint_random, "seed": seed, "log_every": log_every,
             "ckpt_every": ckpt_every}
    cfg = TrainConfig(manifest=str(manifest), motion_checkpoint=str(motion_checkpoint), out=str(out), preset=preset,
                      latents=str(latents) if latents else None, targets=str(targets) if targets else None,
                      compile=compile, resume=resume, progress=not quiet,
                      **{k: v for k, v in given.items() if v is not None})
    result = main(cfg)
    last = result["history"][-1] if result["history"] else {}
    summary = ", ".join(f"{k} {last[k]:.4g}" for k in ("eps", "location", "scale", "pose") if k in last)
    console.print(f"trained to step {result['step']} on {result['clips']} clips; {summary}; "
                  f"checkpoint {result['checkpoint']}")


def generate_speech(
    source: Path = typer.Option(..., help="portrait image (or a video whose first frame is used)"),
    audio: Path = typer.Option(..., help="speech (any format ffmpeg reads; resampled to 16 kHz mono)"),
    checkpoint: Path = typer.Option(..., help="audio2motion checkpoint (last.pt)"),
    motion_checkpoint: Path = typer.Option(..., help="the stage-1 checkpoint the audio2motion model was trained on"),
    out: Path = typer.Option(..., help="output mp4 (25 fps, speech muxed)"),
    pose_yaw: Optional[float] = typer.Option(None, help="constant yaw in [-1, 1] (×90°); with pitch and roll"),
    pose_pitch: Optional[float] = typer.Option(None, help="constant pitch in [-1, 1] (×90°)"),
    pose_roll: Optional[float] = typer.Option(None, help="constant roll in [-1, 1] (×90°)"),
    pose_track: Optional[Path] = typer.Option(None, help=".npy (T, 3) yaw/pitch/roll in degrees"),
    location: Optional[float] = typer.Option(None, help="face location in [0, 1] (nose x / width)"),
    scale: Optional[float] = typer.Option(None, help="face scale in [0, 1]"),
    steps: int = typer.Option(50, help="DDIM steps (stride 1000/steps)"),
    guidance: float = typer.Option(1.0, help="classifier-free guidance scale; 1.0 = off"),
    seed: int = typer.Option(0, help="noise seed"),
    mode: str = typer.Option("windowed", help="windowed (flat memory) | single (AniTalker's one pass)"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
) -> None:
    """Animate SOURCE speaking AUDIO: speech → motion (diffusion) → frames (stage-1 renderer) → mp4."""
    from ..errors import ConfigError
    from ..models.speech import generate_speech as run

    given = (pose_yaw, pose_pitch, pose_roll)
    if any(v is not None for v in given) and any(v is None for v in given):
        raise ConfigError("give all of --pose-yaw, --pose-pitch and --pose-roll, or none")
    pose = None if pose_yaw is None else (pose_yaw, pose_pitch, pose_roll)
    record = run(source, audio, checkpoint, motion_checkpoint, out, pose=pose, pose_track=pose_track,
                 location=location, scale=scale, steps=steps, guidance=guidance, seed=seed, device=device, mode=mode)
    note = (f"; audio resampled from {record['audio_rate_in']} Hz x{record['audio_channels_in']} to 16 kHz mono"
            if record["resampled"] else "")
    console.print(f"wrote {out} ({record['frames']} frames, {record['seconds']:.1f} s){note}")


def register(app: typer.Typer, train_app: typer.Typer, generate_app: typer.Typer) -> None:
    train_app.command("audio2motion")(train_audio2motion)
    generate_app.command("speech")(generate_speech)
