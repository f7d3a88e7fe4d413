"""Build leaderboard tables from result files: one table per (task, protocol), methods × metrics.

Ranking rules (bold = best, underlined = second):

- only *measured* rows of a *standard* protocol run are ranked; rows computed with non-official weights
  (``protocol_standard`` false) are shown, marked, and left out of the ranking;
- ``gt`` is the ground truth itself, the ceiling of every reference metric, so it is shown but not ranked;
- reported rows (the papers' figures, measured under their own protocols) are shown, marked, never ranked;
- metrics without a direction (AV offset, diversity) are not ranked;
- rows of one protocol id made under two protocol definitions (different digests) are refused.

Cells hold the mean over clips ± half the width of the seeded 95 % bootstrap interval (see ``stats``); set-level
metrics (FID, FVD) have one value per run and no interval. Metric directions and labels come from the metric
registry (``talkbench.metrics.spec.METRICS``); per-metric summaries from ``talkbench.results``.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import ConfigError, ManifestError
from ..manifests.io import read_table
from ..metrics.spec import column_order, higher_is_better
from ..results.stats import Estimate
from ..results.summary import summarise_metrics
from .model import Board, Cell, Leaderboard, Row
from .reported import load_reported, reported_for

FORMATS = ("md", "tex", "csv", "html")


def _resolve(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / "results.parquet"
    if not p.exists():
        raise ManifestError(f"{path}: no results file (expected a results.parquet or a folder holding one)")
    return p


def load_results(paths: list[str], protocol: str | None = None) -> list[tuple[Path, list[dict]]]:
    """Read and check every results file before anything is written."""
    loaded, seen, digests = [], {}, {}
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
            digest = digests.setdefault(r["protocol_id"], (r["protocol_digest"], p))
            if digest[0] != r["protocol_digest"]:
                raise ConfigError(f"protocol {r['protocol_id']!r} has two definitions: digest {digest[0]} in "
                                  f"{digest[1]} and {r['protocol_digest']} in {p}; rescore one of them with the "
                                  f"other's talkbench version")
            key = (r["task"], r["protocol_id"], r["method"])
            if seen.setdefault(key, p) != p:
                raise ConfigError(f"method {r['method']!r} ({r['task']}, {r['protocol_id']}) appears in both "
                                  f"{seen[key]} and {p}; pass one of them")
        loaded.append((p, rows))
    return loaded


def _measured_row(method: str, rows: list[dict], files: list[str], n_boot: int, seed: int) -> Row:
    cells = {}
    for metric, m in summarise_metrics(rows, n_boot=n_boot, seed=seed).items():
        cells[metric] = Cell(m.est, m.level, null_reason=", ".join(sorted(m.null_reasons)) if m.all_null else None)
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
