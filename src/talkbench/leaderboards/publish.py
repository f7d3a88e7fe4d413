"""Build leaderboard tables from result files: one table per (task, protocol), methods × metrics.

Ranking rules (bold = best, underlined = second):

- only *measured* rows of a *standard* protocol run are ranked; rows computed with non-official weights
  (``protocol_standard`` false) are shown, marked, and left out of the ranking;
- ``gt`` is the ground truth itself, the ceiling of every reference metric, so it is shown but not ranked;
- reported rows (the papers' figures, measured under their own protocols) are shown, marked, never ranked;
- metrics without a direction (AV offset, diversity) are not ranked;
- rows of one protocol id made under two protocol definitions (different digests) are refused;
- one table holds runs of one manifest (sha256), split and clip set; runs of different ones are refused;
- where a ranked method has no value on a clip another ranked method scored (a failed output), the ranked rows of
  that metric are compared on the common clips and say so; a set-level value over fewer clips is not ranked;
- a `bench run` folder is published only with its complete summary.json.

Cells hold the mean over clips ± half the width of the seeded 95 % bootstrap interval (see ``stats``); set-level
metrics (FID, FVD) have one value per run and no interval. Metric directions and labels come from the metric
registry (``talkbench.metrics.spec.METRICS``); per-metric summaries from ``talkbench.results``.
"""

from __future__ import annotations

import hashlib
import json
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


def check_summary(results: Path) -> None:
    """A `bench run` folder (results.parquet beside run.json) is published only with the summary.json that the run
    wrote for exactly this results file: a run that stopped before its summary is incomplete."""
    folder = results.parent
    if not (folder / "run.json").exists():
        return  # a results file of its own (`metrics compute`): nothing else to check
    from ..media import sha256_file

    summary_file = folder / "summary.json"
    try:
        summary = json.loads(summary_file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{folder}: no summary.json, the run did not finish; rerun `bench run` into it") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{summary_file}: unreadable ({exc}); rerun `bench run` into {folder}") from None
    if not isinstance(summary, dict) or summary.get("results_sha256") != sha256_file(results) \
            or not isinstance(summary.get("metrics"), dict):
        raise ConfigError(f"{summary_file} does not describe {results.name} (incomplete or stale run); rerun "
                          f"`bench run` into {folder}")


def load_results(paths: list[str], protocol: str | None = None) -> list[tuple[Path, list[dict]]]:
    """Read and check every results file before anything is written."""
    loaded, seen, digests = [], {}, {}
    done = set()
    for path in paths:
        p = _resolve(path)
        if p.resolve() in done:  # the same file named twice (a folder and its results.parquet) counts once
            continue
        done.add(p.resolve())
        check_summary(p)
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
    check_clip_sets(loaded)
    return loaded


def _scored_set(rows: list[dict]) -> tuple:
    """What a run was scored on: (manifest sha256, split, clip set). Files without the recorded clip set (older
    `metrics compute` outputs) are described by the hash of their clip ids."""
    r0 = rows[0]
    clip_set = r0.get("clip_set") or "ids:" + hashlib.sha256(
        "\n".join(sorted({r["clip_id"] for r in rows if r["clip_id"] is not None})).encode()).hexdigest()
    return r0.get("manifest_sha256"), r0.get("split"), clip_set


def check_clip_sets(loaded: list[tuple[Path, list[dict]]]) -> None:
    """One table compares runs of one manifest, split and clip set; anything else is refused naming the difference.

    Ranking runs of different clip sets would compare different test sets (a run on easier clips, or a `--limit`
    run, would win). A clip that failed for one method is a different case: the set is the same, and the table
    ranks on the clips every ranked method scored (``build``)."""
    first: dict[tuple, tuple] = {}
    for path, rows in loaded:
        for (task, protocol_id), group in _by(rows, ("task", "protocol_id")).items():
            for (method,), method_rows in _by(group, ("method",)).items():
                got = _scored_set(method_rows)
                ref_set, ref_method, ref_path, ref_rows = first.setdefault((task, protocol_id),
                                                                           (got, method, path, method_rows))
                if ref_set == got:
                    continue
                k = next(i for i in range(3) if ref_set[i] != got[i])
                what = ("manifest sha256", "split", "clip set")[k]
                raise ConfigError(
                    f"{task} · {protocol_id}: {ref_method} ({ref_path}) and {method} ({path}) were scored on different "
                    f"{what}s ({_short(ref_set[k])}, {_n_clips(ref_rows)} clips vs {_short(got[k])}, "
                    f"{_n_clips(method_rows)} clips); one table ranks runs of one manifest, split and clip set: "
                    f"rescore on the same clips")


def _n_clips(rows: list[dict]) -> int:
    return len({r["clip_id"] for r in rows if r["clip_id"] is not None})


def _short(value) -> str:
    return "none" if value is None else str(value)[:12] if len(str(value)) > 16 else str(value)


def _by(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


def _measured_row(method: str, rows: list[dict], files: list[str], n_boot: int, seed: int) -> Row:
    cells = {}
    for metric, m in summarise_metrics(rows, n_boot=n_boot, seed=seed).items():
        cells[metric] = Cell(m.est, m.level, null_reason=", ".join(sorted(m.null_reasons)) if m.all_null else None)
    clips = {r["clip_id"] for r in rows if r["clip_id"] is not None and r["value"] is not None}
    standard = all(r["protocol_standard"] is not False for r in rows)
    partial = any(_is_partial(Path(f)) for f in files)
    note = "" if standard else "non-standard protocol (unofficial weights)"
    if partial:
        note = _add_note(note, "partial run (bench run --metrics): shown, not ranked")
    return Row(method, "measured", cells, n=len(clips), standard=standard, files=files, protocol=rows[0]["protocol_id"],
               note=note, partial=partial)


def _is_partial(results: Path) -> bool:
    """A `bench run --metrics a,b` run scored a subset of the task's metrics (its summary.json says so)."""
    try:
        return bool(json.loads((results.parent / "summary.json").read_text()).get("partial"))
    except (OSError, ValueError, AttributeError):
        return False


def rank_on_common_clips(rows: list[Row], raw: dict[str, list[dict]], n_boot: int, seed: int) -> None:
    """Ranked rows compare the same clips: where a method has no value on a clip that another ranked method scored
    (its output failed, or the metric could not run), every ranked row's cell of that metric is the mean over the
    clips all of them scored, and its n says how many. Set-level metrics (FID, FVD) cannot be recomputed on a
    subset: a run whose set holds fewer reference samples than another's is shown and not ranked on them."""
    ranked = [row for row in rows if row.ranked]
    if len(ranked) < 2:
        return
    metrics = {m for row in ranked for m in row.cells}
    for metric in sorted(metrics):
        own = {row.method: [r for r in raw[row.method] if r["metric"] == metric] for row in ranked}
        if any(r["clip_id"] is None for rs in own.values() for r in rs):  # set level
            real = {m: _set_real(rs) for m, rs in own.items()}
            most = max((v for v in real.values() if v is not None), default=None)
            for row in ranked:
                if most is not None and real[row.method] is not None and real[row.method] < most \
                        and metric in row.cells:
                    row.cells[metric].unranked = f"over {real[row.method]} reference samples, others {most}"
                    row.note = _add_note(row.note, f"{metric} over fewer clips: not ranked")
            continue
        # A method with no value at all for this metric (missing weights, not computable) keeps its null cell and
        # does not empty the common set of the others.
        valued = {m: ids for m, rs in own.items() if rs
                  for ids in [{r["clip_id"] for r in rs if r["value"] is not None}] if ids}
        if len(valued) < 2:
            continue
        common = set.intersection(*valued.values())
        if all(v == common for v in valued.values()):
            continue
        for row in ranked:
            if row.method not in valued:
                continue
            subset = [r for r in own[row.method] if r["clip_id"] in common]
            summary = summarise_metrics(subset, n_boot=n_boot, seed=seed).get(metric)
            est = summary.est if summary else Estimate(None, None, None, 0)
            row.cells[metric] = Cell(est, "clip", null_reason=None if est.mean is not None else "no common clips")
            row.note = _add_note(row.note, f"ranked on the clips every ranked method scored "
                                           f"({metric}: n = {len(common)}, {len(valued[row.method])} own)")


def _set_real(rows: list[dict]) -> int | None:
    for r in rows:
        try:
            return int(json.loads(r["extra"] or "{}")["real"])
        except (KeyError, TypeError, ValueError):
            return None
    return None


def _add_note(note: str, more: str) -> str:
    return more if not note else note if more in note else f"{note}; {more}"


def rank_board(board: Board) -> None:
    """Mark best (1) and second (2) per metric among ranked rows; ties share a rank."""
    for metric in board.metrics:
        hib = higher_is_better(metric)
        if hib is None:
            continue
        scored = [(row.cells[metric].est.mean, row) for row in board.rows
                  if row.ranked and metric in row.cells and not row.cells[metric].unranked
                  and row.cells[metric].est.mean is not None
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
        rank_on_common_clips(rows, {m: rs for m, (rs, _) in methods.items()}, n_boot, seed)
        if with_reported:
            for rep in reported_for(task):
                cells = {metric: Cell(Estimate(v, None, None, 0), "reported", source=src)
                         for metric, (v, src) in rep.figures.items()}
                papers = list(dict.fromkeys(load_reported()[0][k].paper for k in rep.source_keys))
                rows.append(Row(rep.method, "reported", cells, sources=rep.source_keys,
                                protocol=f"reported ({'; '.join(papers)})"))
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
