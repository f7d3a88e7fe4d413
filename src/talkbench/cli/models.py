"""CLI for the reference models: `talkbench train motion`, `models summary`, `generate reenact`, `extract-motion`."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import ConfigError
from ..models.families import FAMILIES, Family, families_help, get_family
from ._app import check_device, console, new_app

train_app = new_app("Train a bundled reference model family on a clips manifest.")
models_app = new_app("Inspect the bundled reference model families.")
generate_app = new_app("Generate videos with a trained reference model.")

def _train_command(family: Family):
    """`train FAMILY`: options default to None, meaning the family's TrainConfig default (its only copy)."""

    def train(
        manifest: Path = typer.Option(..., help="clips.parquet (train-split clips are used; test clips never are)"),
        out: Path = typer.Option(..., help="run folder: last.pt, log.jsonl, tb/ (TensorBoard)"),
        preset: Optional[str] = typer.Option(None, help="model size preset (see `talkbench models summary`)"),
        max_steps: Optional[int] = typer.Option(None, help="stop after this many optimisation steps (across resumes)"),
        batch_size: Optional[int] = typer.Option(None, help="samples per step and per GPU"),
        device: Optional[str] = typer.Option(None, help="auto | cpu | cuda", callback=check_device),
        perceptual: Optional[str] = typer.Option(None, help="perceptual loss: vgg19 (needs `talkbench weights fetch "
                                                            "vgg19`) | none-l1-pyramid"),
        compile: Optional[bool] = typer.Option(None, "--compile", help="torch.compile the networks"),
        resume: Optional[bool] = typer.Option(None, "--resume", help="continue from OUT/last.pt (same architecture)"),
        num_workers: Optional[int] = typer.Option(None, help="DataLoader worker processes"),
        lr: Optional[float] = typer.Option(None, help="Adam learning rate of every network"),
        seed: Optional[int] = typer.Option(None, help="data-order and init seed"),
        log_every: Optional[int] = typer.Option(None, help="log scalars every N steps"),
        image_every: Optional[int] = typer.Option(None, help="log an image grid every N steps"),
        ckpt_every: Optional[int] = typer.Option(None, help="write OUT/last.pt every N steps (and at the end)"),
    ) -> None:
        from dataclasses import fields

        from ..errors import ConfigError

        given = dict(preset=preset, max_steps=max_steps, batch_size=batch_size, device=device, perceptual=perceptual,
                     compile=compile, resume=resume, num_workers=num_workers, lr=lr, seed=seed, log_every=log_every,
                     image_every=image_every, ckpt_every=ckpt_every)
        if lr is not None:
            given["d_lr"] = lr
        known = {f.name for f in fields(family.trainer_module().TrainConfig)}
        for key, value in given.items():
            if value is not None and key not in known:
                raise ConfigError(f"--{key.replace('_', '-')} does not apply to the {family.name} family")
        cfg = family.train_config(manifest=str(manifest), out=str(out), **given)
        _presets(family, cfg.preset)  # fail on a bad preset before reading any data
        result = _train_with_progress(family, cfg)
        last = result["history"][-1] if result["history"] else {}
        summary = ", ".join(f"{k} {last[k]:.4g}" for k in ("l1", "perceptual", "psnr") if k in last)
        console.print(f"trained to step {result['step']}; {summary}; checkpoint {result['checkpoint']}")

    train.__doc__ = (f"Train the {family.name} family: {family.summary}. Under torchrun, use "
                     f"`python -m {family.trainer}` with the same flags.")
    return train


def _train_with_progress(family: Family, cfg) -> dict:
    """Run the trainer with a bar (step, loss, PSNR, steps/s; a record per log step off a terminal) and write
    OUT/meta.json (when, command line, version, git commit, host, device, wall time, status)."""
    import inspect
    import time

    from ..runtime.meta import invocation, now, write_meta
    from ..runtime.progress import Bar

    trainer = family.trainer_module()
    record = {**invocation(getattr(cfg, "device", None)), "kind": "train", "family": family.name,
              "preset": getattr(cfg, "preset", None), "max_steps": getattr(cfg, "max_steps", None)}
    t0 = time.perf_counter()
    bar = Bar(getattr(cfg, "max_steps", None), f"train {family.name}", every=0.0)

    def on_log(row: dict) -> None:
        rate = 1.0 / row["sec_per_step"] if row.get("sec_per_step") else 0.0
        loss = row.get("g_total", row.get("l1"))
        bar.update(row["step"], note=f"step {row['step']} loss {loss:.4g} PSNR {row.get('psnr', float('nan')):.2f} dB "
                                     f"{rate:.2f} steps/s")

    kwargs = {"on_log": on_log} if "on_log" in inspect.signature(trainer.main).parameters else {}
    try:
        with bar:
            result = trainer.main(cfg, **kwargs)
    except BaseException as exc:
        if Path(cfg.out).is_dir():
            write_meta(cfg.out, {**record, "finished": now(), "wall_s": round(time.perf_counter() - t0, 3),
                                 "status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]})
        raise
    write_meta(cfg.out, {**record, "finished": now(), "wall_s": round(time.perf_counter() - t0, 3),
                         "status": "complete", "step": result["step"], "stages_s": {"train": round(
                             time.perf_counter() - t0, 3)}, "checkpoint": result["checkpoint"]})
    return result


def _presets(family: Family, preset: str):
    model = family.model_module()
    if preset not in model.PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {sorted(model.PRESETS)}")
    return model, model.PRESETS[preset]


for _family in FAMILIES.values():
    train_app.command(_family.name)(_train_command(_family))


@models_app.command("summary")
def summary(
    family: str = typer.Argument(..., help=f"model family: {families_help()}"),
    preset: Optional[str] = typer.Option(None, help="size preset (default: the family's training default)"),
) -> None:
    """Print the parameter count per module and the total."""
    entry = get_family(family)
    preset = preset or entry.default_preset()
    model, cfg = _presets(entry, preset)
    table = Table(title=f"{family} / {preset} ({model.describe(cfg)})")
    table.add_column("module")
    table.add_column("parameters", justify="right")
    for name, count in model.param_table(cfg):
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
    device: str = typer.Option("cpu", help="cpu | cuda", callback=check_device),
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
    device: str = typer.Option("cpu", help="cpu | cuda", callback=check_device),
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
