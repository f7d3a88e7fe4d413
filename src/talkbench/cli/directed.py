"""`talkbench generate directed`: portrait + speech + an instruction (or an edited plan) → a directed mp4
(talkbench.models.directed: plan → blueprint → keyframes → sub-clips in one batch)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import console, err_console


def generate_directed(
    source: Path = typer.Option(..., help="portrait image (or a video whose first frame is used)"),
    audio: Path = typer.Option(..., help="speech (any format ffmpeg reads; resampled to 16 kHz mono)"),
    checkpoint: Path = typer.Option(..., help="audio2motion checkpoint (last.pt)"),
    motion_checkpoint: Path = typer.Option(..., help="the stage-1 checkpoint the audio2motion model was trained on"),
    out: Path = typer.Option(..., help="output mp4 (25 fps, speech muxed)"),
    instruction: Optional[str] = typer.Option(None, help='e.g. "nod while saying hello, then zoom in at the end"; '
                                                         "empty: the neutral plan"),
    plan: Optional[Path] = typer.Option(None, help="an (edited) plan.json from `talkbench plan` instead"),
    transcript: Optional[str] = typer.Option(None, help="what is said; places 'while saying X' in time"),
    plan_out: Optional[Path] = typer.Option(None, help="also write the plan used here"),
    steps: int = typer.Option(20, help="DDIM steps of the sub-clips"),
    blueprint_steps: int = typer.Option(10, help="DDIM steps of the blueprint pass"),
    guidance: float = typer.Option(1.0, help="classifier-free guidance scale; 1.0 = off"),
    seed: int = typer.Option(0, help="noise seed"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
) -> None:
    """Animate SOURCE speaking AUDIO, following a text instruction: a director's plan drives the head pose,
    expression and camera; keyframes bound sub-clips generated in one batch."""
    from ..models.directed import DirectedConfig
    from ..models.directed import generate_directed as run

    def said(the_plan: dict) -> None:  # before any output
        for note in the_plan.get("notes", []):
            console.print(note)
        for u in the_plan.get("unmatched", []):
            err_console.print(f"unmatched: {u['phrase']!r} ({u['reason']})", markup=False)

    cfg = DirectedConfig(steps=steps, blueprint_steps=blueprint_steps, guidance=guidance, seed=seed)
    record = run(source, audio, checkpoint, motion_checkpoint, out, instruction=instruction, plan=plan,
                 transcript=transcript, cfg=cfg, device=device, plan_out=plan_out, on_plan=said)
    console.print(f"wrote {out} ({record['frames']} frames, {len(record['keyframes'])} keyframes, "
                  f"{record['seconds']:.1f} s)")


def register(generate_app: typer.Typer) -> None:
    generate_app.command("directed")(generate_directed)

