"""`talkbench weights ...`: list, fetch, import and verify the pretrained networks (``talkbench.weights``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ._app import console, new_app

app = new_app("Manage pretrained weights in $TALKBENCH_HOME/weights (default ~/.cache/talkbench/weights).")


@app.command("list")
def list_cmd() -> None:
    """List every registry entry: file, installed state, hash kind, size and licence."""
    from .. import weights

    table = Table(title=f"weights in {weights.weights_home()}")
    for col in ("name", "file", "installed", "official hash", "size", "licence"):
        table.add_column(col)
    for name, entry in weights.all_entries().items():
        record = weights.installed_record(name)
        if record is None:
            state = "no"
        else:
            state = {True: "yes (official)", None: "yes (unpinned)", False: "yes (UNVERIFIED)"}[record.get("official")]
        hash_text = {"sha256": entry.sha256[:16] + "…", "prefix": f"prefix {entry.sha256}", "unpinned": "none published"}
        size = "?" if not entry.size else (f"{entry.size / 1e6:.1f} MB" if entry.size > 1e5 else f"{entry.size} B")
        table.add_row(name, entry.filename, state, hash_text[entry.hash_kind], size, entry.licence.split(" (")[0])
    console.print(table)


@app.command("fetch")
def fetch_cmd(name: str = typer.Argument(..., help="registry entry, e.g. lpips-alex"),
              url: Optional[str] = typer.Option(None, help="download from this URL instead of the registry's")) -> None:
    """Install an entry: offline local source first (lpips heads from torchmetrics), else a resumable download."""
    from .. import weights

    record = weights.fetch(name, url=url)
    console.print(f"installed {name}: sha256 {record['sha256']} from {record['source']}")


@app.command("import")
def import_cmd(path: Path = typer.Argument(..., help="a weights file you brought from elsewhere"),
               as_: str = typer.Option(..., "--as", help="registry entry to install it as"),
               unverified: bool = typer.Option(False, "--unverified",
                                               help="accept a non-official hash if keys/shapes match; results are "
                                                    "then marked with a non-standard protocol id")) -> None:
    """Install a local file as a registry entry after checking its hash and structure."""
    from .. import weights

    record = weights.install_file(as_, path, unverified=unverified, source=f"import:{path}")
    note = {True: "official", None: "no published hash (recorded)", False: "NON-STANDARD (unverified)"}[record["official"]]
    console.print(f"installed {as_}: sha256 {record['sha256']} ({note})")


@app.command("verify")
def verify_cmd(names: Optional[List[str]] = typer.Argument(None, help="entries to check (default: all)")) -> None:
    """Re-hash every installed file and re-check its structure; exit 1 if any is changed or bad."""
    from .. import weights
    from ..errors import WeightsError

    results = weights.verify(names or None)
    table = Table(title="weights verify")
    for col in ("name", "status", "detail"):
        table.add_column(col)
    for r in results:
        table.add_row(r["name"], r["status"], r["detail"])
    console.print(table)
    bad = [r["name"] for r in results if r["status"] in ("changed", "bad")]
    if bad:
        raise WeightsError(f"weights failed verification: {', '.join(bad)}")


def register(root: typer.Typer) -> None:
    """Add the `weights` group to the root app."""
    root.add_typer(app, name="weights")
