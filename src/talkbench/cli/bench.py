"""The `bench` console script: run methods on a test split, score them, publish leaderboards."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import typer
from rich.table import Table

from ..bench.methods import METHOD_OPTIONS, check_method_name, method_choices
from ..bench.tasks import TASKS
from ..errors import ConfigError
from ._app import console, new_app, run_app

app = new_app("bench: score talking-head methods under pinned protocols and publish leaderboards.")


def _method_name(value: str) -> str:
    """Unknown methods are usage errors (exit 2), named with the registry's choices."""
    try:
        check_method_name(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


@app.command("methods")
def methods_cmd() -> None:
    """List the methods and the tasks each supports."""
    from ..bench.methods import method_table

    table = Table(title="methods")
    for col in ("method", "tasks", "options", "description"):
        table.add_column(col)
    for row in method_table():
        table.add_row(row["method"], ", ".join(row["tasks"]), ", ".join(row["options"]), row["description"])
    console.print(table)


@app.command("tasks")
def tasks_cmd() -> None:
    """List the tasks with their inputs and metrics."""
    from ..bench.tasks import TASKS

    for task in TASKS.values():
        console.print(f"[bold]{task.name}[/bold]" + (" (experimental)" if task.experimental else ""))
        console.print(f"  metrics: {', '.join(task.metrics)}", markup=False)
        console.print(f"  {task.description}", markup=False)


@app.command("pairs")
def pairs_cmd(
    manifest: Path = typer.Option(..., "--manifest", help="clips.parquet written by `curate build-manifest`"),
    out: Path = typer.Option(..., "--out", help="CSV: clip_id (driver), source_clip_id, driver_path, source_path"),
    split: str = typer.Option("test", "--split", help="which split of the manifest"),
    seed: int = typer.Option(0, "--seed", help="cross-reenact pairing seed (use the same one for bench run)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="only the first N drivers (by clip_id)"),
) -> None:
    """Write the cross-reenactment pairs, so an external method can generate PATH/<clip_id>.mp4 for folder:PATH."""
    import csv
    import io

    from ..bench.run import read_split
    from ..bench.tasks import get_task, make_jobs
    from ..manifests.io import atomic_write_text

    jobs = make_jobs(get_task("cross-reenact"), read_split(str(manifest), split), manifest.resolve().parent, seed=seed,
                     limit=limit)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["clip_id", "source_clip_id", "driver_path", "source_path"])
    for job in jobs:
        writer.writerow([job["clip_id"], job["source_clip_id"], job["clip_path"], job["source_path"]])
    atomic_write_text(out, buf.getvalue())
    console.print(f"{len(jobs)} pairs (seed {seed}) written to {out}")


@app.command("run")
def run_cmd(
    method: str = typer.Option(..., "--method", callback=_method_name,
                               help=" | ".join(method_choices()) + " (see `bench methods`)"),
    task: str = typer.Option(..., "--task", help=" | ".join(TASKS)),
    manifest: Path = typer.Option(..., "--manifest", help="clips.parquet written by `curate build-manifest`"),
    out: Path = typer.Option(..., "--out", help="output folder (results.parquet, summary.json, videos/)"),
    split: str = typer.Option("test", "--split", help="which split of the manifest to score"),
    limit: Optional[int] = typer.Option(None, "--limit", help="score only the first N clips (by clip_id)"),
    protocol: str = typer.Option("talkbench-v1-256", "--protocol", help="evaluation protocol id"),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help=METHOD_OPTIONS["checkpoint"].help),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    workers: int = typer.Option(1, "--workers", help="parallel workers (processes or ray tasks)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="ray cluster address, e.g. auto"),
    device: str = typer.Option("cpu", "--device", help="torch device for the model and metric networks"),
    batch_size: int = typer.Option(METHOD_OPTIONS["batch_size"].default, "--batch-size",
                                   help=METHOD_OPTIONS["batch_size"].help),
    seed: int = typer.Option(0, "--seed", help="cross-reenact pairing seed"),
    length_policy: str = typer.Option(METHOD_OPTIONS["length_policy"].default, "--length-policy",
                                      help=METHOD_OPTIONS["length_policy"].help),
    allow_nonsquare: bool = typer.Option(False, "--allow-nonsquare", help=METHOD_OPTIONS["allow_nonsquare"].help),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="bootstrap resamples for the 95 % CI"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
) -> None:
    """Generate and score every clip of a split; writes OUT/results.parquet and OUT/summary.json. Resumable."""
    from ..bench.run import BenchConfig, run_bench

    cfg = BenchConfig(method=method, task=task, manifest=str(manifest), out=str(out), split=split, limit=limit,
                      protocol=protocol, checkpoint=str(checkpoint) if checkpoint else None, executor=executor,
                      workers=workers, ray_address=ray_address, device=device, batch_size=batch_size, seed=seed,
                      length_policy=length_policy, allow_nonsquare=allow_nonsquare, n_boot=bootstrap, quiet=quiet)
    result = run_bench(cfg)
    console.print(summary_table(result.summary))
    missing = result.summary.get("missing_weights") or {}
    for metric, hint in missing.items():
        console.print(f"[yellow]{metric}: weights missing; install with: {hint}[/yellow]")
    console.print(f"{result.n_jobs} clips ({result.n_cached} already done), results in {result.out / 'results.parquet'}")


def summary_table(summary: dict) -> Table:
    from ..leaderboards.render import format_number
    from ..metrics.spec import arrow, label

    run = summary["run"]
    title = f"{run['method']} · {run['task']} · {run['protocol_id']} · {summary['n_scored']}/{summary['n_clips']} clips"
    table = Table(title=title)
    for col in ("metric", "mean", "95 % CI", "n", "null"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, m in summary["metrics"].items():
        ci = "set-level" if m["level"] == "set" else (
            f"[{format_number(name, m['ci_low'])}, {format_number(name, m['ci_high'])}]" if m["ci_low"] is not None
            else "—")
        # "missing weights: <install hint>": the hints are printed once below the table
        nulls = ", ".join(f"{k.split(':')[0] if k.startswith('missing weights') else k} ×{v}"
                          for k, v in m["null_reasons"].items())
        table.add_row(f"{label(name)} {arrow(name)}", format_number(name, m["mean"]), ci, str(m["n"] or 0), nulls)
    return table


@app.command("publish")
def publish_cmd(
    results: List[Path] = typer.Argument(..., help="results.parquet files (or folders holding one)"),
    out: Path = typer.Option(..., "--out", help="output folder for the leaderboard files"),
    formats: str = typer.Option("md,tex,csv,html", "--format", help="comma-separated: md, tex, csv, html"),
    protocol: Optional[str] = typer.Option(None, "--protocol",
                                           help="publish one protocol only; a file of another protocol is an error"),
    reported: bool = typer.Option(True, "--reported/--no-reported", help="add the papers' reported figures"),
    quiet: bool = typer.Option(False, "--quiet", help="do not print the tables"),
) -> None:
    """Build leaderboard tables (one per task and protocol) from result files, beside the papers' reported figures."""
    from ..leaderboards.publish import publish

    board = publish([str(p) for p in results], str(out), formats=[f.strip() for f in formats.split(",") if f.strip()],
                    protocol=protocol, with_reported=reported)
    if not quiet:
        from ..leaderboards.render import rich_tables

        for table in rich_tables(board):
            console.print(table)
    for path in board.files:
        console.print(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    code = run_app(app, argv, "bench")
    if argv is None:
        raise SystemExit(code)
    return code
