"""`talkbench demo make OUT_DIR`: generate demo material from real media (written in talkbench.demo)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import check_workers, console

app = typer.Typer(help="Demo material built from real media on this machine.", no_args_is_help=True)


@app.command("make")
def make(out_dir: Path = typer.Argument(..., help="Folder to write the demo videos and sources.csv into."),
         seconds: float = typer.Option(3.0, help="Length of each passing portrait video, in seconds.")) -> None:
    """Animate real portrait photos (with espeak-ng speech) plus failure cases, and write OUT_DIR/sources.csv.

    Then run: curate build-manifest OUT_DIR/sources.csv --out DIR
    """
    from ..demo import make_demo

    sources = make_demo(out_dir, seconds=seconds)
    console.print(f"wrote {sources}")
    console.print(f"next: curate build-manifest {sources} --out {Path(out_dir) / 'curated'}")


@app.command("run")
def run(out_dir: Path = typer.Argument(..., help="Folder for the whole demo: material/, curated/, runs/, leaderboards/."),
        workers: int = typer.Option(2, help="Worker processes for curation and scoring.", callback=check_workers),
        seconds: float = typer.Option(3.0, help="Length of each passing portrait video, in seconds."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars.")) -> None:
    """The main job on generated real material: demo videos → curate build-manifest → bench run (gt, static) → publish.

    Every step is the same command a user would type; rerunning on the same folder resumes and changes nothing.
    """
    from ..demo import make_demo
    from . import bench, curate

    out_dir = Path(out_dir)
    flags = ["--quiet"] if quiet else []
    console.rule("1/4 demo material from real media")
    sources = make_demo(out_dir / "material", seconds=seconds)
    console.print(f"wrote {sources}")
    steps = [("2/4 curate build-manifest", curate.main,
              ["build-manifest", str(sources), "--out", str(out_dir / "curated"), "--workers", str(workers), *flags])]
    manifest = out_dir / "curated" / "clips.parquet"
    for method in ("gt", "static"):
        steps.append((f"3/4 bench run --method {method}", bench.main,
                      ["run", "--method", method, "--task", "self-reenact", "--manifest", str(manifest), "--split", "test",
                       "--workers", str(workers), "--out", str(out_dir / "runs" / method), *flags]))
    steps.append(("4/4 bench publish", bench.main,
                  ["publish", str(out_dir / "runs" / "gt"), str(out_dir / "runs" / "static"),
                   "--out", str(out_dir / "leaderboards")]))
    for title, command, argv in steps:
        console.rule(title)
        code = command(argv)
        if code:
            raise typer.Exit(code)
    console.rule("done")
    console.print(f"clip dataset: {manifest}")
    console.print(f"curation report: {out_dir / 'curated' / 'report.html'}")
    console.print(f"leaderboard: {out_dir / 'leaderboards' / 'index.html'}")


def register(root: typer.Typer) -> None:
    """Add the `demo` group to the root app."""
    root.add_typer(app, name="demo")
