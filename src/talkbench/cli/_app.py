"""Shared CLI plumbing: one-line errors, --debug, --quiet and a shared rich console."""

from __future__ import annotations

import os
import sys
from typing import Sequence

import click
import typer
from rich.console import Console

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def new_app(help: str) -> typer.Typer:
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def run_app(app: typer.Typer, argv: Sequence[str] | None, prog_name: str) -> int:
    """Run a typer app; errors become one line on stderr and exit 1 unless --debug is given.

    Returns the exit code (and raises SystemExit with it when called as a console script via ``main``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("TALKBENCH_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        app(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: every error becomes one line
        if debug:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        err_console.print(f"error: {message}", markup=False)
        return 1
    return 0


def exit_with(code: int, argv_given: bool):
    if argv_given:
        return code
    raise SystemExit(code)
