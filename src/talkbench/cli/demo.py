"""`talkbench demo make OUT_DIR`: generate demo material from real media (written in talkbench.demo)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import check_workers, console, new_app

app = new_app("Demo material built from real media on this machine.")


@app.command("make")
def make(out_dir: Path = typer.Argument(..., help="Folder to write the demo videos and sources.csv into."),
         seconds: float = typer.Option(3.0, help="Length of each passing portrait video, in seconds.")) -> None:
    """Animate real portrait photos (with espeak-ng speech) plus failure cases, and write OUT_DIR/sources.csv.

    Then run: curate build-manifest OUT_DIR/sources.csv --config OUT_DIR/curate.yaml --out DIR
    """
    from ..demo import DEMO_CONFIG, make_demo

    sources = make_demo(out_dir, seconds=seconds)
    console.print(f"wrote {sources}")
    console.print(f"next: curate build-manifest {sources} --config {sources.parent / DEMO_CONFIG} "
                  f"--out {Path(out_dir) / 'curated'}", markup=False)


@app.command("run")
def run(out_dir: Path = typer.Argument(..., help="Folder for the whole demo: material/, curated/, runs/, leaderboards/."),
        workers: int = typer.Option(2, help="Worker processes for curation and scoring.", callback=check_workers),
        seconds: float = typer.Option(3.0, help="Length of each passing portrait video, in seconds."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars.")) -> None:
    """The main job on generated real material: demo videos → curate build-manifest → bench run (gt, static) → publish.

    Every step is the same command a user would type; rerunning on the same folder resumes and changes nothing.
    """
    from ..demo import DEMO_CONFIG, make_demo
    from . import bench, curate

    out_dir = Path(out_dir)
    flags = ["--quiet"] if quiet else []
    console.rule("1/4 demo material from real media")
    sources = make_demo(out_dir / "material", seconds=seconds)
    console.print(f"wrote {sources}")
    steps = [("2/4 curate build-manifest", curate.main,
              ["build-manifest", str(sources), "--config", str(sources.parent / DEMO_CONFIG),
               "--out", str(out_dir / "curated"), "--workers", str(workers), *flags])]
    manifest = out_dir / "curated" / "clips.parquet"
    # the test split holds two identities (curate.yaml), so cross-reenactment pairs people too
    runs = [("gt", "self-reenact", "gt"), ("static", "self-reenact", "static"),
            ("static", "cross-reenact", "static-cross")]
    for method, task, folder in runs:
        steps.append((f"3/4 bench run --method {method} --task {task}", bench.main,
                      ["run", "--method", method, "--task", task, "--manifest", str(manifest), "--split", "test",
                       "--workers", str(workers), "--out", str(out_dir / "runs" / folder), *flags]))
    steps.append(("4/4 bench publish", bench.main,
                  ["publish", *(str(out_dir / "runs" / folder) for _, _, folder in runs),
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
