"""`talkbench weights ...`: list, fetch, import and verify the pretrained networks (``talkbench.weights``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from ._app import console, json_option, listing, new_app, one_line

app = new_app("Manage pretrained weights in $TALKBENCH_HOME/weights (default ~/.cache/talkbench/weights).")


def _state(name: str) -> str:
    from .. import weights

    record = weights.installed_record(name)
    if record is None:
        return "no"
    return {True: "yes (official)", None: "yes (unpinned)", False: "yes (UNVERIFIED)"}[record.get("official")]


def _size(entry) -> str:
    return "?" if not entry.size else (f"{entry.size / 1e6:.1f} MB" if entry.size > 1e5 else f"{entry.size} B")


@app.command("list")
def list_cmd(as_json: bool = json_option()) -> None:
    """List every registry entry: file, installed state, hash kind, size and licence."""
    from .. import weights

    rows = []
    for name, entry in weights.all_entries().items():
        hash_text = {"sha256": "sha256 " + entry.sha256[:12], "prefix": f"prefix {entry.sha256}",
                     "unpinned": "none published"}
        rows.append({"name": name, "file": entry.filename, "installed": _state(name),
                     "official_hash": hash_text[entry.hash_kind], "sha256": entry.sha256 or None,
                     "size": _size(entry), "licence": entry.licence.split(" (")[0]})
    listing(f"weights in {weights.weights_home()}",
            [("name", "name", "key"), ("installed", "installed", "text"), ("size", "size", "text"),
             ("file", "file", "extra"), ("official hash", "official_hash", "extra"), ("licence", "licence", "extra")],
            rows, as_json)


def protocol_entries(protocol_id: str) -> dict[str, list[str]]:
    """weights entry → the metrics of a protocol that use it."""
    from ..manifests.protocols import get_protocol

    try:
        protocol = get_protocol(protocol_id)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    needs: dict[str, list[str]] = {}
    for metric, net in protocol.feature_nets:
        needs.setdefault(net.weights, []).append(metric)
    return needs


@app.command("fetch")
def fetch_cmd(name: Optional[str] = typer.Argument(None, help="registry entry, e.g. lpips-alex"),
              url: Optional[str] = typer.Option(None, help="download from this URL instead of the registry's"),
              for_: Optional[str] = typer.Option(None, "--for",
                                                 help="every entry this protocol needs, e.g. talkbench-v1-256"),
              all_: bool = typer.Option(False, "--all", help="every registry entry"),
              as_json: bool = json_option("print the outcome table as JSON")) -> None:
    """Install an entry (offline local source first, else a resumable download), or all a protocol needs.

    With --for/--all, everything is tried, and one table says what is installed and what is still missing with
    the command that installs it; exit 1 when anything is missing.
    """
    from .. import weights
    from ..errors import WeightsError

    if sum(x is not None and x is not False for x in (name, for_, all_ or None)) != 1:
        raise typer.BadParameter("give one of NAME, --for PROTOCOL or --all")
    if name is not None:
        record = weights.fetch(name, url=url)
        console.print(f"installed {name}: sha256 {record['sha256']} from {record['source']}")
        return
    if url is not None:
        raise typer.BadParameter("--url needs a single NAME")
    needs = protocol_entries(for_) if for_ else {n: [] for n in weights.entry_names()}
    rows = []
    for entry_name, metrics in sorted(needs.items()):
        row = {"name": entry_name, "metrics": metrics, "status": None, "detail": None, "install": None}
        if weights.is_installed(entry_name):
            row.update(status="installed", detail=_state(entry_name))
        else:
            try:
                record = weights.fetch(entry_name)
                row.update(status="fetched", detail=str(record["source"]))
            except WeightsError as exc:
                entry = weights.get_entry(entry_name)
                row.update(status="missing", detail=one_line(str(exc), 120), file=entry.filename,
                           url=entry.urls[0] if entry.urls else None,
                           install=f"talkbench weights import {entry.filename} --as {entry_name}")
        rows.append(row)
    listing(f"weights for {for_ or 'every entry'}",
            [("name", "name", "key"), ("status", "status", "text"), ("metrics", "metrics", "text"),
             ("detail", "detail", "extra")], rows, as_json)
    missing = [r["name"] for r in rows if r["status"] == "missing"]
    if missing and not as_json:
        # commands and URLs on their own unwrapped lines, so they can be copied whole
        console.print("missing: download the file on a machine with network, then import it here:", markup=False)
        for r in rows:
            if r["status"] == "missing":
                console.print(f"  {r['install']}" + (f"    # {r['url']}" if r["url"] else ""), markup=False,
                              soft_wrap=True)
    if missing:
        raise WeightsError(f"{len(missing)} of {len(rows)} weights entries missing: {', '.join(missing)}; "
                           f"the table above has the command for each")


@app.command("import")
def import_cmd(path: Path = typer.Argument(..., help="a weights file you brought from elsewhere"),
               as_: str = typer.Option(..., "--as", help="registry entry to install it as"),
               unverified: bool = typer.Option(False, "--unverified",
                                               help="accept a non-official hash if keys/shapes match; results are "
                                                    "then marked with a non-standard protocol id")) -> None:
    """Install a local file as a registry entry after checking its hash and structure."""
    from .. import weights
    from ..errors import WeightsError

    try:
        weights.get_entry(as_)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--as") from None
    try:
        record = weights.install_file(as_, path, unverified=unverified, source=f"import:{path}")
    except WeightsError as exc:
        # one line under 200 characters: the file, the entry and what is wrong (the full text is in --debug)
        import re

        why = re.sub(r"\b([0-9a-f]{12})[0-9a-f]{52}\b", r"\1…", str(exc).replace(f"{path}: ", "", 1))  # short digests
        raise WeightsError(one_line(f"cannot import {path} as {as_}: {why}", 190)) from exc
    note = {True: "official", None: "no published hash (recorded)", False: "NON-STANDARD (unverified)"}[record["official"]]
    console.print(f"installed {as_}: sha256 {record['sha256']} ({note})")


@app.command("verify")
def verify_cmd(names: Optional[List[str]] = typer.Argument(None, help="entries to check (default: all)"),
               as_json: bool = json_option()) -> None:
    """Re-hash every installed file and re-check its structure; exit 1 if any is changed or bad."""
    from .. import weights
    from ..errors import WeightsError

    results = weights.verify(names or None)
    listing("weights verify", [("name", "name", "key"), ("status", "status", "text"), ("detail", "detail", "text")],
            results, as_json)
    bad = [r["name"] for r in results if r["status"] in ("changed", "bad")]
    if bad:
        raise WeightsError(f"weights failed verification: {', '.join(bad)}")


def register(root: typer.Typer) -> None:
    """Add the `weights` group to the root app."""
    root.add_typer(app, name="weights")
