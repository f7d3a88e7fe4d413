"""CLI for the reference models: `talkbench train motion`, `models summary`, `generate reenact`, `extract-motion`."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._app import console, new_app

train_app = new_app("Train the bundled reference models on a clips manifest.")
models_app = new_app("Inspect the bundled reference model families.")
generate_app = new_app("Generate videos with a trained reference model.")

FAMILIES = ("motion",)


@train_app.command("motion")
def train_motion(
    manifest: Path = typer.Option(..., help="clips.parquet (train-split clips are used; test clips are never read)"),
    out: Path = typer.Option(..., help="run folder: last.pt, log.jsonl, tb/ (TensorBoard)"),
    preset: str = typer.Option("base", help="model size: tiny (64 px, CPU) or base (256 px, ~47 M generator)"),
    max_steps: int = typer.Option(100_000, help="stop after this many optimisation steps (counted across resumes)"),
    batch_size: int = typer.Option(8, help="samples per step and per GPU"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    perceptual: str = typer.Option("vgg19", help="vgg19 (needs `talkbench weights fetch vgg19`) | none-l1-pyramid"),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the generator and discriminator"),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT/last.pt (same architecture required)"),
    num_workers: int = typer.Option(2, help="DataLoader worker processes"),
    lr: float = typer.Option(2e-3, help="generator/discriminator Adam learning rate (LIA default)"),
    seed: int = typer.Option(0, help="data-order and init seed"),
    log_every: int = typer.Option(10, help="log scalars every N steps"),
    image_every: int = typer.Option(500, help="log an image grid every N steps"),
    ckpt_every: int = typer.Option(1000, help="write OUT/last.pt every N steps (and at the end)"),
) -> None:
    """Train the motion encoder + warping renderer (AniTalker stage 1). Under torchrun, use
    `python -m talkbench.models.train_motion` with the same flags."""
    from ..models.motion import get_config
    from ..models.train_motion import TrainConfig, main

    get_config(preset)  # fail on a bad preset before reading any data
    cfg = TrainConfig(manifest=str(manifest), out=str(out), preset=preset, max_steps=max_steps,
                      batch_size=batch_size, device=device, perceptual=perceptual, compile=compile, resume=resume,
                      num_workers=num_workers, lr=lr, d_lr=lr, seed=seed, log_every=log_every,
                      image_every=image_every, ckpt_every=ckpt_every)
    result = main(cfg)
    last = result["history"][-1] if result["history"] else {}
    summary = ", ".join(f"{k} {last[k]:.4g}" for k in ("l1", "perceptual", "psnr") if k in last)
    console.print(f"trained to step {result['step']}; {summary}; checkpoint {result['checkpoint']}")


@models_app.command("summary")
def summary(
    family: str = typer.Argument(..., help=f"model family: {', '.join(FAMILIES)}"),
    preset: str = typer.Option("base", help="size preset"),
) -> None:
    """Print the parameter count per module and the total."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {sorted(FAMILIES)}")
    from ..models.motion import get_config, param_table

    cfg = get_config(preset)
    table = Table(title=f"{family} / {preset} ({cfg.size} px, style {cfg.style_dim}, motion {cfg.motion_dim})")
    table.add_column("module")
    table.add_column("parameters", justify="right")
    for name, count in param_table(cfg):
        table.add_row(name, f"{count:,}")
    console.print(table)


def _read_source(path: Path):
    import numpy as np

    from .. import media
    from ..errors import MediaError

    if not path.exists():
        raise MediaError(f"{path}: no such source file")
    if path.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".webp"}:
        from PIL import Image

        return np.asarray(Image.open(path).convert("RGB"))
    first = next(iter(media.iter_frames(path, chunk=1)), None)  # a video source: its first frame
    if first is None:
        raise MediaError(f"{path}: no frames decoded")
    return first[0]


def _video_fps(path: Path) -> float:
    from .. import media

    for stream in media.probe_json(path).get("streams", []):
        if stream.get("codec_type") == "video":
            rate = stream.get("avg_frame_rate") or stream.get("r_frame_rate") or "25/1"
            if rate not in ("0/0", "0"):
                return float(Fraction(rate))
    return 25.0


@generate_app.command("reenact")
def reenact(
    source: Path = typer.Option(..., help="source portrait (image, or a video whose first frame is used)"),
    driver: Path = typer.Option(..., help="driving video; its audio is muxed into the output"),
    checkpoint: Path = typer.Option(..., help="motion-model checkpoint (last.pt)"),
    out: Path = typer.Option(..., help="output mp4"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    batch_size: int = typer.Option(16, help="driver frames per forward pass"),
) -> None:
    """Animate SOURCE with the motion of DRIVER (relative driving), streaming in chunks."""
    from .. import media
    from ..models.inference import ReenactModel

    model = ReenactModel.from_checkpoint(checkpoint, device=device)
    src = _read_source(source)
    frames = model.reenact(src, media.iter_frames(driver, chunk=batch_size), batch_size=batch_size)
    media.write_video(out, frames, fps=_video_fps(driver), audio=driver)
    console.print(f"wrote {out}")


def extract_motion(
    manifest: Path = typer.Option(..., help="clips.parquet"),
    checkpoint: Path = typer.Option(..., help="motion-model checkpoint"),
    out: Path = typer.Option(..., help="output Parquet (motion_latents table)"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    split: Optional[str] = typer.Option(None, help="only clips of this split (train | test); default all"),
    batch_size: int = typer.Option(64, help="frames per forward pass"),
) -> None:
    """Write per-clip motion latents (T x 20) and identity codes to Parquet (input of the audio-to-motion model)."""
    from ..models.inference import extract_motion as run

    table = run(manifest, checkpoint, out, device=device, batch_size=batch_size, split=split)
    console.print(f"wrote {table.num_rows} clips to {out}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(train_app, name="train")
    app.add_typer(models_app, name="models")
    app.add_typer(generate_app, name="generate")
    app.command("extract-motion")(extract_motion)
