"""`talkbench metrics ...`: score generated videos against ground truth under a pinned protocol."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ._app import check_device, console, new_app

app = new_app("Compute talking-head metrics under a pinned protocol (per-video rows in the results schema).")


@app.command("compute")
def compute_cmd(
    pred: Path = typer.Option(..., help="generated video, folder of PNG frames, or folder of videos"),
    gt: Optional[Path] = typer.Option(None, help="ground truth in the same layout (paired by clip id)"),
    metrics: str = typer.Option("psnr,ssim,lpips", help="comma-separated metrics, or 'all' (see `metrics list`)"),
    protocol: str = typer.Option("talkbench-v1-256", help="evaluation protocol id"),
    source: Optional[Path] = typer.Option(None, help="source portrait image (CSIM)"),
    audio: Optional[Path] = typer.Option(None, help="audio file for Sync (default: the pred video's own track)"),
    face_cropped: bool = typer.Option(False, "--face-cropped", help="inputs are 224x224 face crops: skip detection for Sync"),
    method: str = typer.Option("pred", help="method name written in the rows"),
    device: str = typer.Option("cpu", help="torch device", callback=check_device),
    length_policy: str = typer.Option("error", "--length-policy",
                                      help="pred and gt of different lengths: error | trim (recorded in the rows)"),
    allow_nonsquare: bool = typer.Option(False, "--allow-nonsquare",
                                         help="resize non-square frames to the protocol square (recorded) instead of "
                                              "refusing them"),
    out: Path = typer.Option(..., help="output Parquet file (results schema)"),
) -> None:
    """Score every clip of --pred (against --gt), write per-video and set-level rows, print a summary.

    Inputs go through the input policy `bench run` uses (talkbench.metrics.inputs): every fps or size resample and
    every trim is recorded in the rows' extra; non-square frames and length mismatches are refused unless asked."""
    import talkbench

    from ..errors import ConfigError
    from ..manifests.io import write_table
    from ..manifests.protocols import get_protocol
    from ..media import read_audio
    from ..metrics.evaluate import Evaluator
    from ..metrics.inputs import InputError, InputPolicy, list_clips, match_length, read_clip, read_image
    from ..metrics.spec import computable

    policy = InputPolicy(length_policy, allow_nonsquare)
    proto = get_protocol(protocol)
    names = list(computable()) if metrics == "all" else [m.strip() for m in metrics.split(",") if m.strip()]
    evaluator = Evaluator(protocol, metrics=names, device=device, face_cropped=face_cropped)
    for metric, hint in evaluator.missing_weights().items():
        console.print(f"[yellow]{metric}: weights missing, its rows will be null ({hint})[/yellow]")
    pred_clips = list_clips(pred)
    gt_clips = list_clips(gt) if gt else {}
    if gt and len(pred_clips) == 1 and len(gt_clips) == 1:
        gt_clips = {next(iter(pred_clips)): next(iter(gt_clips.values()))}  # one pair: ids need not match
    unpaired = sorted(set(pred_clips) - set(gt_clips)) if gt else []
    if gt and unpaired:
        raise ConfigError(f"no ground truth for clip(s) {unpaired[:5]} in {gt}; ids are file stems")
    source_img = read_image(source) if source else None
    audio_override = read_audio(audio, rate=proto.audio_rate) if audio else None
    # Every input is read and checked before anything is scored or written: a refused clip is one line.
    clips = []
    for clip_id, path in sorted(pred_clips.items()):
        try:
            clip = read_clip(clip_id, path, proto, policy)
            ref = read_clip(clip_id, gt_clips[clip_id], proto, policy) if gt else None
            record, flags = dict(clip.info), list(clip.flags)
            gt_frames = None
            if ref is not None:
                if ref.info.get("resampled"):
                    record["gt_resampled"] = ref.info["resampled"]
                flags += ref.flags
                frames, n_ref, trim, trim_flags = match_length(clip.frames, len(ref.frames), policy)
                clip.frames, gt_frames = frames, ref.frames[:n_ref]
                record.update(trim)
                flags += trim_flags
        except InputError as exc:
            raise ConfigError(f"{clip_id}: {exc}") from None
        clips.append((clip, gt_frames, record, flags))
    rows = []
    for clip, gt_frames, record, flags in clips:
        clip_audio = audio_override if audio_override is not None else clip.audio
        clip_rows = evaluator.add_video(clip.clip_id, clip.frames, gt_frames, source=source_img, audio=clip_audio)
        for row in clip_rows:  # every resample and trim, in every row of the clip
            row["extra"] = json.dumps({**json.loads(row["extra"] or "{}"), **record}, sort_keys=True)
            row["flags"] = ",".join(dict.fromkeys([f for f in (row["flags"] or "").split(",") if f] + flags)) or None
        rows += clip_rows
    rows += evaluator.finalize()
    for row in rows:
        row.update(method=method, task=None, split=None, talkbench_version=talkbench.__version__)
    write_table(rows, out, "results")
    _print_summary(rows, evaluator.protocol_id)
    console.print(f"wrote {len(rows)} rows to {out}")


@app.command("list")
def list_cmd() -> None:
    """List the registered metrics: inputs, level, direction and the weights each needs."""
    from ..metrics.spec import METRICS, arrow

    table = Table(title="metrics")
    for col in ("metric", "label", "inputs", "level", "better", "weights", "tasks"):
        table.add_column(col)
    for name, spec in METRICS.items():
        if spec.compute is None:
            continue
        weights = "detector's" if callable(spec.weights) else ", ".join(spec.weights)
        table.add_row(name, spec.label, spec.inputs, spec.level, arrow(name) or "not ranked", weights,
                      ", ".join(spec.tasks))
    console.print(table)


def _print_summary(rows: list[dict], protocol_id: str) -> None:
    table = Table(title=f"metrics ({protocol_id})")
    for col in ("metric", "mean", "videos", "null", "note"):
        table.add_column(col)
    by_metric: dict[str, list[dict]] = {}
    for row in rows:
        by_metric.setdefault(row["metric"], []).append(row)
    for metric, group in by_metric.items():
        values = [r["value"] for r in group if r["value"] is not None]
        mean = sum(values) / len(values) if values else None
        notes = sorted({r["null_reason"] for r in group if r["null_reason"]} | {r["flags"] for r in group if r["flags"]})
        text = "—" if mean is None else ("inf" if math.isinf(mean) else f"{mean:.4f}")
        table.add_row(metric, text, str(len(values)), str(len(group) - len(values)), "; ".join(notes)[:80])
    console.print(table)


def register(root: typer.Typer) -> None:
    """Add the `metrics` group to the root app."""
    root.add_typer(app, name="metrics")
