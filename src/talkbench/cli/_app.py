"""Shared CLI plumbing: one-line errors, --debug, --quiet and a shared rich console."""

from __future__ import annotations

import os
import sys
from typing import Sequence

import click
import typer
from rich.console import Console

try:  # typer >= 0.20 vendors its own click; its exceptions are not click's.
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover - older typer uses click itself
    _typer_click = click.exceptions

_EXIT = tuple({click.exceptions.Exit, typer.Exit})
_ABORT = tuple({click.exceptions.Abort, typer.Abort})
_CLICK_ERROR = tuple({click.ClickException, _typer_click.ClickException})

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
    except _EXIT as exc:
        return exc.exit_code
    except _ABORT:
        err_console.print("aborted")
        return 130
    except _CLICK_ERROR as exc:
        # Usage errors too become one line; they keep click's exit code (2), other errors exit 1.
        message = " ".join(exc.format_message().split())
        hint = f" (see {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) is not None else ""
        err_console.print(f"error: {message}{hint}", markup=False)
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
