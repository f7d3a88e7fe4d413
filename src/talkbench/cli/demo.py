"""`talkbench demo ...`: generate demo material from real media (written in talkbench.demo)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
