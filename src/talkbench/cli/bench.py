"""The `bench` console script: run methods on a test split, score them, publish leaderboards."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import typer
from rich.table import Table

from ..bench.methods import METHOD_OPTIONS, check_method_name, method_choices
from ..bench.tasks import TASKS
from ..errors import ConfigError
from ..runtime.executors import EXECUTORS
from ._app import check_device, check_workers, choice, console, json_option, listing, new_app, run_app

app = new_app("bench: score talking-head methods under pinned protocols and publish leaderboards.", root=True)


def _method_name(value: str) -> str:
    """Unknown methods are usage errors (exit 2), named with the registry's choices."""
    try:
        check_method_name(value)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


@app.command("methods")
def methods_cmd(as_json: bool = json_option()) -> None:
    """List the methods and the tasks each supports."""
    from ..bench.methods import method_table

    listing("methods", [("method", "method", "key"), ("tasks", "tasks", "text"), ("options", "options", "text"),
                        ("description", "description", "extra")], method_table(), as_json)


@app.command("tasks")
def tasks_cmd(as_json: bool = json_option()) -> None:
    """List the tasks with their inputs and metrics."""
    if as_json:
        listing("tasks", [], [{"task": t.name, "metrics": list(t.metrics), "experimental": t.experimental,
                               "description": t.description} for t in TASKS.values()], True)
        return
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
    task: str = typer.Option(..., "--task", help=" | ".join(TASKS), callback=choice("task", TASKS)),
    manifest: Path = typer.Option(..., "--manifest", help="clips.parquet written by `curate build-manifest`"),
    out: Path = typer.Option(..., "--out", help="output folder (results.parquet, summary.json, videos/)"),
    split: str = typer.Option("test", "--split", help="which split of the manifest to score"),
    limit: Optional[int] = typer.Option(None, "--limit", help="score only the first N clips (by clip_id)"),
    protocol: str = typer.Option("talkbench-v1-256", "--protocol", help="evaluation protocol id"),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help=METHOD_OPTIONS["checkpoint"].help),
    motion_checkpoint: Optional[Path] = typer.Option(None, "--motion-checkpoint",
                                                     help=METHOD_OPTIONS["motion_checkpoint"].help),
    steps: int = typer.Option(METHOD_OPTIONS["steps"].default, "--steps", help=METHOD_OPTIONS["steps"].help),
    executor: str = typer.Option("local", "--executor", help="local | ray", callback=choice("executor", EXECUTORS)),
    workers: int = typer.Option(1, "--workers", help="parallel workers (processes or ray tasks)",
                                callback=check_workers),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="ray cluster address, e.g. auto"),
    device: str = typer.Option("cpu", "--device", help="torch device for the model and metric networks",
                               callback=check_device),
    batch_size: int = typer.Option(METHOD_OPTIONS["batch_size"].default, "--batch-size",
                                   help=METHOD_OPTIONS["batch_size"].help),
    seed: int = typer.Option(0, "--seed", help="cross-reenact pairing seed"),
    length_policy: str = typer.Option(METHOD_OPTIONS["length_policy"].default, "--length-policy",
                                      help=METHOD_OPTIONS["length_policy"].help),
    allow_nonsquare: bool = typer.Option(False, "--allow-nonsquare", help=METHOD_OPTIONS["allow_nonsquare"].help),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="bootstrap resamples for the 95 % CI"),
    name: Optional[str] = typer.Option(None, "--name", help="row label in leaderboards (default: the method), "
                                                             "e.g. ours-step20k beside ours-step40k"),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="score only these metrics (comma-separated result "
                                                                   "labels); the run is marked partial, never ranked"),
    instructions: Optional[str] = typer.Option(None, "--instructions",
                                               help="task instruction: only these bundled instruction ids "
                                                    "(comma-separated, e.g. i01,i02; see data/instructions.json)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
) -> None:
    """Generate and score every clip of a split; writes OUT/results.parquet, summary.json, meta.json. Resumable."""
    from ..bench.run import BenchConfig
    from ..bench.runs import run_with_meta
    from ..bench.tasks import get_task

    subset = tuple(dict.fromkeys(m.strip() for m in metrics.split(",") if m.strip())) if metrics else None
    if subset:
        unknown = sorted(set(subset) - set(get_task(task).metrics))
        if unknown:
            raise typer.BadParameter(f"unknown metric {unknown[0]!r} for task {task!r}; choose from "
                                     f"{sorted(get_task(task).metrics)}", param_hint="--metrics")

    chosen = None
    if instructions is not None:
        from ..bench.instruction import select_instructions

        if task != "instruction":
            raise typer.BadParameter(f"only task 'instruction' takes instruction ids, not {task!r}",
                                     param_hint="--instructions")
        try:
            chosen = tuple(i["id"] for i in select_instructions(instructions.split(",")))
        except ConfigError as err:
            raise typer.BadParameter(str(err), param_hint="--instructions") from None

    cfg = BenchConfig(method=method, task=task, manifest=str(manifest), out=str(out), split=split, limit=limit,
                      instructions=chosen, protocol=protocol, checkpoint=str(checkpoint) if checkpoint else None,
                      executor=executor,
                      workers=workers, ray_address=ray_address, device=device, batch_size=batch_size, seed=seed,
                      length_policy=length_policy, allow_nonsquare=allow_nonsquare, n_boot=bootstrap, quiet=quiet,
                      name=name, metrics=subset, steps=steps,
                      motion_checkpoint=str(motion_checkpoint) if motion_checkpoint else None)
    result = run_with_meta(cfg)
    console.print(summary_table(result.summary))
    missing = result.summary.get("missing_weights") or {}
    for metric, hint in missing.items():
        console.print(f"[yellow]{metric}: weights missing; install with: {hint}[/yellow]")
    unit = "videos" if task == "instruction" else "clips"  # instruction: each clip × (instructions + neutral)
    console.print(f"{result.n_jobs} {unit} ({result.n_cached} already done), results in "
                  f"{result.out / 'results.parquet'}")
    if subset:
        console.print(f"partial run (metrics {', '.join(subset)}): listed by `bench runs`, never ranked against full "
                      f"runs", markup=False)


@app.command("runs")
def runs_cmd(folders: Optional[List[Path]] = typer.Argument(None, help="run folders, or folders holding them "
                                                                        "(default: ./runs)"),
             as_json: bool = json_option()) -> None:
    """List bench runs: name, method, task, protocol, clips, status (complete, partial, failed), when, cost."""
    from ..bench.runs import list_runs
    from ..runtime.progress import format_seconds

    paths = [str(f) for f in folders] if folders else ["runs"]
    for path in paths:
        if not Path(path).exists():
            raise typer.BadParameter(f"{path}: no such folder")
    rows = list_runs(paths)
    for row in rows:
        row["cost"] = format_seconds(row["wall_s"]) if row["wall_s"] else None
    listing(f"{len(rows)} runs under {', '.join(paths)}",
            [("run", "run", "key"), ("name", "name", "key"), ("task", "task", "text"),
             ("clips", "clips", "text"), ("status", "status", "text"), ("when", "when", "extra"),
             ("cost", "cost", "text"), ("method", "method", "extra"), ("protocol", "protocol", "extra"),
             ("metrics", "metrics", "extra")], rows, as_json)


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


if __name__ == "__main__":  # python -m talkbench.cli.bench
    main()
