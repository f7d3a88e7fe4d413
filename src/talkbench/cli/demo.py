"""`talkbench demo make OUT_DIR`: generate demo material from real media (written in talkbench.demo)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import console

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


def register(root: typer.Typer) -> None:
    """Add the `demo` group to the root app."""
    root.add_typer(app, name="demo")
