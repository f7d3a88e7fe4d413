"""`talkbench manifests ...`: print and check the Parquet schemas that cross stage boundaries."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from ..manifests import SCHEMA_VERSION, TABLES, read_table, table_schema
from ._app import console, new_app

app = new_app("Inspect manifest schemas and validate manifest files.")


def schema_table(name: str) -> Table:
    schema = table_schema(name)
    table = Table(title=f"{name} (schema version {SCHEMA_VERSION})", show_lines=False)
    table.add_column("column")
    table.add_column("type")
    table.add_column("nullable")
    for field in schema:
        table.add_row(field.name, str(field.type), "yes" if field.nullable else "no")
    return table


@app.command("schema")
def schema(table: Optional[str] = typer.Argument(None, help=f"One of {', '.join(TABLES)}; all when omitted.")):
    """Print the schema of one manifest table (or all of them)."""
    for name in [table] if table else list(TABLES):
        console.print(schema_table(name))


@app.command("validate")
def validate(path: str = typer.Argument(..., help="Parquet file to check."),
             table: str = typer.Option(..., "--table", help=f"Expected table: {', '.join(TABLES)}.")):
    """Check that a Parquet file is a valid manifest of the given table; exits non-zero otherwise."""
    t = read_table(path, table)
    console.print(f"{path}: valid {table} manifest, {t.num_rows} rows")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="manifests")
