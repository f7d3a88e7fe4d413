"""Build leaderboard tables from result files: one table per (task, protocol), methods × metrics.

Ranking rules (bold = best, underlined = second):

- only *measured* rows of a *standard* protocol run are ranked; rows computed with non-official weights
  (``protocol_standard`` false) are shown, marked, and left out of the ranking;
- ``gt`` is the ground truth itself, the ceiling of every reference metric, so it is shown but not ranked;
- reported rows (the papers' figures, measured under their own protocols) are shown, marked, never ranked;
- metrics without a direction (AV offset) are not ranked.

Cells hold the mean over clips ± half the width of the seeded 95 % bootstrap interval (see ``stats``); set-level
metrics (FID, FVD) have one value per run and no interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, ManifestError
from ..manifests.io import read_table
from .metric_info import column_order, higher_is_better
from .reported import load_reported, reported_for
from .stats import Estimate, bootstrap_ci

FORMATS = ("md", "tex", "csv", "html")
UNRANKED_METHODS = {"gt": "ground truth: the ceiling, not ranked"}


@dataclass
class Cell:
    est: Estimate
    level: str = "clip"  # clip | set
    rank: int | None = None  # 1 best, 2 second, among ranked rows
    null_reason: str | None = None  # every value of the cell was null
    source: str | None = None  # reported figures: the source key


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

    @property
    def ranked(self) -> bool:
        return self.kind == "measured" and self.standard and self.method not in UNRANKED_METHODS


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


def _resolve(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "results.parquet"
    if not p.exists():
        raise ManifestError(f"{path}: no results file (expected a results.parquet or a folder holding one)")
    return p


def load_results(paths: list[str], protocol: str | None = None) -> list[tuple[Path, list[dict]]]:
    """Read and check every results file before anything is written."""
    loaded, seen = [], {}
    done = set()
    for path in paths:
        p = _resolve(path)
        if p.resolve() in done:  # the same file named twice (a folder and its results.parquet) counts once
            continue
        done.add(p.resolve())
        rows = read_table(p, "results").to_pylist()
        if not rows:
            raise ManifestError(f"{p}: the results file holds no rows")
        for r in rows:
            if protocol is not None and r["protocol_id"] != protocol:
                raise ConfigError(f"{p}: results of protocol {r['protocol_id']!r} cannot go into a "
                                  f"{protocol!r} table")
            key = (r["task"], r["protocol_id"], r["method"])
            if seen.setdefault(key, p) != p:
                raise ConfigError(f"method {r['method']!r} ({r['task']}, {r['protocol_id']}) appears in both "
                                  f"{seen[key]} and {p}; pass one of them")
        loaded.append((p, rows))
    return loaded


def _measured_row(method: str, rows: list[dict], files: list[str], n_boot: int, seed: int) -> Row:
    by_metric: dict[str, list[dict]] = {}
    for r in rows:
        by_metric.setdefault(r["metric"], []).append(r)
    cells = {}
    for metric, group in by_metric.items():
        values = [r["value"] for r in group if r["value"] is not None]
        reasons = sorted({r["null_reason"] or "unknown" for r in group if r["value"] is None})
        if all(r["clip_id"] is None for r in group):
            v = values[0] if values else None
            est = Estimate(v, None, None, int(group[0]["n"] or 0))
            cells[metric] = Cell(est, "set", null_reason=None if values else ", ".join(reasons))
        else:
            est = bootstrap_ci(values, n_boot=n_boot, seed=seed)
            cells[metric] = Cell(est, "clip", null_reason=None if values else ", ".join(reasons))
    clips = {r["clip_id"] for r in rows if r["clip_id"] is not None and r["value"] is not None}
    standard = all(r["protocol_standard"] is not False for r in rows)
    return Row(method, "measured", cells, n=len(clips), standard=standard, files=files,
               note="" if standard else "non-standard protocol (unofficial weights)")


def rank_board(board: Board) -> None:
    """Mark best (1) and second (2) per metric among ranked rows; ties share a rank."""
    for metric in board.metrics:
        hib = higher_is_better(metric)
        if hib is None:
            continue
        scored = [(row.cells[metric].est.mean, row) for row in board.rows
                  if row.ranked and metric in row.cells and row.cells[metric].est.mean is not None
                  and not math.isnan(row.cells[metric].est.mean)]
        distinct = sorted({v for v, _ in scored}, reverse=hib)
        for value, row in scored:
            position = distinct.index(value) + 1
            if position <= 2:
                row.cells[metric].rank = position


def build(loaded: list[tuple[Path, list[dict]]], *, with_reported: bool = True, n_boot: int = 1000,
          seed: int = 0) -> Leaderboard:
    groups: dict[tuple[str, str], dict[str, tuple[list[dict], list[str]]]] = {}
    for path, rows in loaded:
        for r in rows:
            table = groups.setdefault((r["task"], r["protocol_id"]), {})
            bucket = table.setdefault(r["method"], ([], []))
            bucket[0].append(r)
            if str(path) not in bucket[1]:
                bucket[1].append(str(path))
    boards, cited = [], set()
    for (task, protocol_id), methods in sorted(groups.items()):
        rows = [_measured_row(m, rs, files, n_boot, seed) for m, (rs, files) in sorted(methods.items())]
        if with_reported:
            for rep in reported_for(task):
                cells = {metric: Cell(Estimate(v, None, None, 0), "reported", source=src)
                         for metric, (v, src) in rep.figures.items()}
                rows.append(Row(rep.method, "reported", cells, sources=rep.source_keys))
                cited.update(rep.source_keys)
        metrics = column_order({m for row in rows for m in row.cells})
        board = Board(task, protocol_id, metrics, rows)
        rank_board(board)
        boards.append(board)
    sources, _, version = load_reported() if with_reported else ({}, (), None)
    return Leaderboard(boards, {k: sources[k] for k in sorted(cited)}, version if with_reported else None)


def publish(results: list[str], out: str, *, formats: list[str] | tuple[str, ...] = FORMATS,
            protocol: str | None = None, with_reported: bool = True, n_boot: int = 1000) -> Leaderboard:
    """Validate every input, then write leaderboard.{md,tex,csv}, index.html and plots/ under ``out``."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown format {unknown[0] if unknown else ''!r}; choose from {sorted(FORMATS)}")
    board = build(load_results(results, protocol), with_reported=with_reported, n_boot=n_boot)
    from . import render

    out_dir = Path(out)
    writers = {"md": render.write_markdown, "tex": render.write_latex, "csv": render.write_csv,
               "html": render.write_html}
    for fmt in formats:
        board.files.extend(writers[fmt](board, out_dir))
    return board
