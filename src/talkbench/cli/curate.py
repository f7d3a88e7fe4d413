"""The `curate` console script: source lists → normalised videos → clip dataset."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import typer

from ._app import console, err_console, new_app, run_app

app = new_app("curate: build identity-tagged talking-head clip datasets from source lists.")

FORMAT_HELP = "Source list format: hdtf | table | folder (default: detected from each path)."


def _stage_names() -> str:
    from ..curation.stages import STAGES

    return " | ".join(stage.name for stage in STAGES)


def _load_config(config_file: Optional[Path], overrides: List[str]):
    import yaml

    from ..curation.config import CurationConfig
    from ..errors import ConfigError

    config = CurationConfig()
    if config_file is not None:
        try:
            data = yaml.safe_load(Path(config_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {config_file}: {exc}") from exc
        try:
            config = CurationConfig.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{config_file}: {exc}") from exc
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        parsed[key.strip()] = yaml.safe_load(value)  # 200 → int, 0.5 → float, true → bool, null → None
    try:
        return config.with_overrides(parsed) if parsed else config
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


@app.command("sources")
def sources_command(
    paths: List[Path] = typer.Argument(..., help="Source lists: an HDTF metadata folder, CSV/Parquet/YAML tables, "
                                                 "or folders of videos."),
    out: Path = typer.Option(..., "--out", "-o", help="The sources Parquet file to write."),
    fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
):
    """Read and merge source lists into one normalised sources table (malformed lines are reported and skipped)."""
    from ..curation.pipeline import build_sources

    rows, issues = build_sources(paths, out, fmt)
    if not quiet:
        for issue in issues:
            err_console.print(f"skipped {issue}", markup=False)
        spans = sum(len(r["spans"] or []) for r in rows)
        console.print(f"{len(rows)} sources, {spans} spans, {len(issues)} skipped lines → {out}", markup=False)


@app.command("build-manifest")
def build_manifest_command(
    sources: List[Path] = typer.Argument(..., help="Source lists (see `curate sources`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (manifests, media, stats)."),
    until: str = typer.Option("all", "--until", help=f"Last stage to run: {_stage_names()} | all."),
    executor: str = typer.Option("local", "--executor", help="local (process pool) | ray."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address, e.g. auto."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Parallel worker processes."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summary."),
    overrides: List[str] = typer.Option([], "--set", help="Config override section.key=value (repeatable)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="CurationConfig YAML file."),
    fmt: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
):
    """Download, probe and normalise every source into OUT/videos.parquet, then run the clip stages that exist."""
    from ..curation.pipeline import build_manifest
    from ..runtime import make_executor

    config = _load_config(config_file, overrides)
    runner = make_executor(executor, workers=workers, quiet=quiet, ray_address=ray_address)
    log = None if quiet else (lambda message: err_console.print(message, markup=False))
    result = build_manifest(sources, out, config, runner, until=until, fmt=fmt, quiet=quiet, log=log)
    if not quiet:
        status = ", ".join(f"{n} {s}" for s, n in result.videos.items()) or "none"
        console.print(f"{result.sources} sources → videos: {status}; {result.segments} segments; "
                      f"{result.rejections} rejections"
                      + (f"; {result.clips} clips" if result.clips is not None else "")
                      + f" → {result.out_dir}", markup=False)


@app.command("report")
def report_command(
    out: Path = typer.Argument(..., help="A curated folder (the --out of build-manifest)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
):
    """Rebuild OUT/report.html and OUT/report/*.png (funnel, drops, histograms, contact sheet) from the manifests."""
    from ..curation.report import build_report

    path = build_report(out)
    if not quiet:
        console.print(f"report → {path}", markup=False)


def main(argv: Sequence[str] | None = None) -> int:
    code = run_app(app, argv, "curate")
    if argv is None:
        raise SystemExit(code)
    return code
