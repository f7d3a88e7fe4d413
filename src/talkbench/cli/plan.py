"""`talkbench plan`: audio + a text instruction → a validated, time-coded control plan (talkbench.director)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from ..errors import PlanError
from ._app import console, err_console


def plan_cmd(
    audio: Path = typer.Option(..., "--audio", help="The speech (any format ffmpeg reads; used at 16 kHz mono)."),
    instruction: str = typer.Option(None, "--instruction", help='What to do, e.g. "nod while saying hello, then '
                                                                'zoom in at the end". Empty: the neutral plan.'),
    plan: Path = typer.Option(None, "--plan", help="Validate an edited plan.json against the audio instead."),
    transcript: str = typer.Option(None, "--transcript", help="What is said; places 'while saying X' in time."),
    source: Path = typer.Option(None, "--source", help="The portrait to animate (recorded in the plan)."),
    fps: int = typer.Option(25, "--fps", help="Frame rate of the video to plan."),
    out: Path = typer.Option(None, "--out", help="Where to write plan.json (required with --instruction)."),
) -> None:
    """Write a time-coded control plan: shots with emotion, head, gesture, camera and intensity.

    Unmatched phrases are listed, never guessed. Edit the JSON and check it again with --plan.
    """
    from ..director.plan import make_plan, validate_plan

    # Every check before any output.
    if (instruction is None) == (plan is None):
        raise PlanError("give exactly one of --instruction TEXT and --plan PLAN.json")
    if not audio.is_file():
        raise PlanError(f"audio file not found: {audio}")
    if source is not None and not source.is_file():
        raise PlanError(f"source portrait not found: {source}")
    if plan is not None:
        if not plan.is_file():
            raise PlanError(f"plan file not found: {plan}")
        try:
            data = json.loads(plan.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"{plan} is not JSON: {exc}") from None
        from ..director.plan import _load_audio
        from ..director.segments import RATE

        validate_plan(data, round(len(_load_audio(audio)) / RATE, 3))
        if out is not None:
            _write(out, data)
        console.print(f"{plan}: valid plan, {len(data['shots'])} shots over {data['duration']} s"
                      + (f"; wrote {out}" if out is not None else ""))
        return
    if out is None:
        raise PlanError("--out PLAN.json is required with --instruction")
    result = make_plan(audio, instruction, transcript=transcript, fps=fps)
    if instruction.strip() and not result["controls"]:
        listed = "; ".join(f"{u['phrase']!r} ({u['reason']})" for u in result["unmatched"])
        raise PlanError(f"no known control in the instruction; unmatched: {listed}")
    if source is not None:
        result["source"] = str(source)
    _write(out, result)
    for note in result["notes"]:
        console.print(note)
    for c in result["controls"]:
        console.print(f"{c['kind']} {c['value']} {c['t0']:.2f}-{c['t1']:.2f} s  from {c['phrase']!r} "
                      f"({c['timing']}, similarity {c['score']:.2f})")
    for u in result["unmatched"]:
        err_console.print(f"unmatched: {u['phrase']!r} ({u['reason']})", markup=False)
    console.print(f"wrote {out}: {len(result['shots'])} shots over {result['duration']} s")


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def register(root: typer.Typer) -> None:
    """Add the `plan` command to the root app."""
    root.command("plan")(plan_cmd)
