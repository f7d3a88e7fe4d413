"""Shared CLI plumbing: one-line errors, --debug, --version, -h, shared option checks and a shared rich console."""

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


CONTEXT = {"help_option_names": ["-h", "--help"]}
MAX_ERROR = 200  # characters of one error line; the full text is in --debug's traceback


def new_app(help: str, *, root: bool = False) -> typer.Typer:
    """A command group; ``root`` adds ``--version`` (the console scripts' top level)."""
    app = typer.Typer(help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      context_settings=CONTEXT)
    if root:
        @app.callback()
        def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                               help="print the talkbench version and exit")) -> None:
            """(the group's own help is the Typer help text)"""
    return app


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(f"talkbench {__version__}", markup=False)
        raise typer.Exit(0)


# ------------------------------------------------------------------------------------- options shared by commands
# Every command that takes --workers or --device checks it here, so a bad value is refused the same way (exit 2,
# one line) everywhere, before any work or output.


def check_workers(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise typer.BadParameter(f"must be ≥ 1, got {value}")
    return value


def check_device(value: str | None) -> str | None:
    """cpu, cuda, cuda:N, meta or auto; a CUDA device needs a visible GPU."""
    if value is None or value in ("cpu", "auto", "meta"):
        return value
    if not (value == "cuda" or (value.startswith("cuda:") and value[5:].isdigit())):
        raise typer.BadParameter(f"unknown device {value!r}; choose from ['auto', 'cpu', 'cuda', 'cuda:N']")
    import torch

    if not torch.cuda.is_available():
        raise typer.BadParameter(f"{value}: no CUDA GPU is visible (torch.cuda.is_available() is False); "
                                 f"use --device cpu")
    index = int(value[5:]) if ":" in value else 0
    if index >= torch.cuda.device_count():
        raise typer.BadParameter(f"{value}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return value


def choice(kind: str, choices) -> "callable":
    """An option callback: a value outside ``choices`` is a usage error (exit 2) naming the choices."""
    def check(value):
        if value is not None and value not in choices:
            raise typer.BadParameter(f"unknown {kind} {value!r}; choose from {sorted(choices)}")
        return value
    return check


def one_line(message: str, limit: int = MAX_ERROR) -> str:
    """Collapse whitespace; cut a long message at a sentence/clause boundary under ``limit`` characters."""
    message = " ".join(message.split())
    if len(message) <= limit:
        return message
    cut = message[: limit - 1]
    for sep in ("; ", ". ", " (", ", "):
        at = cut.rfind(sep)
        if at > limit // 2:
            return cut[:at].rstrip(" .;,") + " …"
    return cut.rstrip() + "…"


def run_app(app: typer.Typer, argv: Sequence[str] | None, prog_name: str) -> int:
    """Run a typer app; errors become one line on stderr and exit 1 unless --debug is given.

    Returns the exit code (and raises SystemExit with it when called as a console script via ``main``).
    """
    if argv is None:  # the console script (not a test calling main([...])): filter the native libraries' logs
        from ._quiet import silence_native_logs

        silence_native_logs()
    args = list(sys.argv[1:] if argv is None else argv)
    from ..runtime.meta import set_command

    set_command([prog_name, *args])
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


# ------------------------------------------------------------------------------------------------- listing tables


def listing(title: str, columns: Sequence[tuple[str, str, str]], rows: list[dict], as_json: bool) -> None:
    """Print a listing as JSON (``--json``: the rows, all columns) or as a table that never cuts what a user types.

    ``columns``: (header, row key, kind) with kind ``key`` (a name the user types: never wrapped or cut), ``text``
    (wraps) or ``extra`` (dropped when the console is narrower than 100 columns, e.g. piped at 80).
    """
    import json

    if as_json:
        sys.stdout.write(json.dumps(rows, default=str, indent=1) + "\n")
        return
    from rich.table import Table

    narrow = console.width < 100
    table = Table(title=title, title_justify="left")
    shown = [(h, k, kind) for h, k, kind in columns if not (narrow and kind == "extra")]
    for header, key, kind in shown:
        if kind == "key":
            width = max([len(header)] + [len(str(r.get(key, ""))) for r in rows])
            table.add_column(header, no_wrap=True, min_width=width, overflow="ignore")
        else:
            table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for _, key, _ in shown))
    console.print(table)
    dropped = [h for h, _, kind in columns if narrow and kind == "extra"]
    if dropped:
        console.print(f"(narrow terminal: {', '.join(dropped)} not shown; --json has every column)", markup=False,
                      style="dim")


def _cell(value):
    from rich.text import Text

    if value is None or value == "":
        return Text("–")
    if isinstance(value, (list, tuple)):
        return Text(", ".join(str(v) for v in value))
    return Text(str(value))


def json_option(help: str = "print the rows as JSON instead of a table"):
    return typer.Option(False, "--json", help=help)
