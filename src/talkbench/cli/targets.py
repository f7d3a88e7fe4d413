"""`talkbench extract-targets`: per-frame motion targets (expression, head pose, body, hands) of curated clips."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from ._app import console


def extract_targets_command(
    manifest: Path = typer.Option(..., "--manifest", "-m", help="The clips manifest, DIR/clips.parquet."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the target tables, e.g. DIR/targets."),
    profile: str = typer.Option("upper-body", "--profile", help="Curation profile whose upper_body section sets the "
                                                                "detectors and the number of expression components."),
    overrides: List[str] = typer.Option([], "--set", help="Config override, e.g. "
                                                          "upper_body.expression_components=8 (repeatable)."),
    fit_split: str = typer.Option("train", "--fit-split", help="Split the expression basis is fitted on."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Face expression coefficients (a PCA basis of pose-removed face meshes, fitted on the train split), head pose
    6-D, 25 upper-body keypoints and 21 joints per hand for every frame of every clip, as validated Parquet tables."""
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
