"""The leaderboard data model: tables of methods × metrics, built by ``publish`` and written by ``render``/``plots``.

It has its own module so the orchestrator (publish), the writers (render) and the plots all import it and none of
them imports another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..results.stats import Estimate

UNRANKED_METHODS = {"gt": "ground truth: the ceiling, not ranked"}


@dataclass
class Cell:
    est: Estimate
    level: str = "clip"  # clip | set
    rank: int | None = None  # 1 best, 2 second, among ranked rows
    null_reason: str | None = None  # every value of the cell was null
    source: str | None = None  # reported figures: the source key
    unranked: str = ""  # why a ranked row's cell is left out of the ranking (a set-level value over fewer clips)


@dataclass
class Row:
    method: str
    kind: str  # measured | reported
    cells: dict[str, Cell]
    n: int | None = None  # clips scored (measured rows)
    standard: bool = True
    files: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # reported rows: source keys (footnotes)
    note: str = ""
    protocol: str = ""  # what made the figures: the table's protocol id, or "reported (<paper>)"
    partial: bool = False  # `bench run --metrics`: a subset of the task's metrics, shown and never ranked

    @property
    def ranked(self) -> bool:
        return (self.kind == "measured" and self.standard and not self.partial
                and self.method not in UNRANKED_METHODS)


@dataclass
class Board:
    task: str
    protocol_id: str
    metrics: list[str]
    rows: list[Row]

    @property
    def slug(self) -> str:
        return f"{self.task}__{self.protocol_id}".replace("/", "_").replace(" ", "_")

    @property
    def title(self) -> str:
        return f"{self.task} · {self.protocol_id}"


@dataclass
class Leaderboard:
    boards: list[Board]
    sources: dict  # key -> reported.Source, only the ones cited by some table
    reported_version: int | None
    files: list[Path] = field(default_factory=list)
