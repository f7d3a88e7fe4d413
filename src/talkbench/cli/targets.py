"""`talkbench extract-targets`: per-frame motion targets (expression, head pose, body, hands) of curated clips."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._app import console


PROFILES = ("head", "upper-body")  # head: audio2motion's pose/location/scale; upper-body: the avatar's tables


def extract_targets_command(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="The clips manifest, DIR/clips.parquet."),
    out: Path = typer.Option(..., "--out", "-o", help="head: a Parquet file (motion_targets table); upper-body: a "
                                                      "folder for the target tables, e.g. DIR/targets."),
    profile: str = typer.Option("head", "--profile", help=f"Which targets: {' | '.join(PROFILES)}."),
    split: Optional[str] = typer.Option(None, "--split", help="head: only clips of this split (train | test)."),
    size: int = typer.Option(256, "--size", help="head: decode clips at this size before landmarking."),
    overrides: List[str] = typer.Option([], "--set", help="upper-body: config override, e.g. "
                                                          "upper_body.expression_components=8 (repeatable)."),
    fit_split: str = typer.Option("train", "--fit-split", help="upper-body: split the expression basis is fitted on."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Per-frame training targets of every clip, as validated Parquet tables.

    head (audio2motion): head pose ÷ 90, face location and scale. upper-body (avatar): face expression coefficients
    (a PCA basis of pose-removed face meshes, fitted on the train split), head pose 6-D, 25 upper-body keypoints and 21
    joints per hand."""
    from ..errors import ConfigError

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
    if profile == "head":
        from ..models.targets import extract_targets as run

        table = run(manifest, out, split=split, size=size)
        if not quiet:
            console.print(f"wrote {table.num_rows} clips to {out}", markup=False)
        return
    from ..curation.targets import extract_targets
    from .curate import _load_config

    config = _load_config(None, overrides, profile)
    counts = extract_targets(manifest, out, config.upper_body, fit_split,
                             log=None if quiet else (lambda m: console.print(m, markup=False)))
    if not quiet:
        summary = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        console.print(f"wrote {summary} rows → {out}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("extract-targets")(extract_targets_command)
