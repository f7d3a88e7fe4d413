"""Executors run a list of steps over N ranks, with per-rank stats, atomic completion markers and resume.

Layout of ``logging_dir`` (one folder per stage):

    stage.json             world size and hashes of the step config and of each rank's input rows; a changed config
                           or world size restarts the stage, a changed shard reruns only that rank
    {rank:05d}.json        per-rank stats: rows in/out, drops by reason, seconds per step
    completions/{rank:05d} written atomically after the rank's output; completed ranks are skipped on rerun
    output/{rank:05d}.parquet             the rank's output rows, sorted by the stage's key (``parts.py``: each row
                                          as JSON, data that cannot run code, plus the key and named columns)
    output/{rank:05d}.rejections.parquet  the rank's dropped rows with their reasons

Rank ``r`` of ``world_size`` gets ``rows[r::world_size]``. The outputs stay in storage: ``merge`` returns a lazy
k-way merge of the parts by the stage's key (``parts.MergedRows``, about one row group per part in memory), the
rows a stable sort of the rank-order concatenation gives, so the result does not depend on the executor or the
number of workers. Without a key the merge is the rank-order concatenation, read a part at a time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..errors import StepOutputError
from ..manifests.io import atomic_write_text
from .parts import PART_FORMAT, MergedRows, iter_rejections, write_part, write_rejections
from .step import Step, StepContext

MAX_TASKS = 1024


@dataclass
class StageResult:
    rows: MergedRows | list[dict]  # lazy: iterate it (more than once), or list() it
    rejections: list[dict]
    stats: dict = field(default_factory=dict)
    skipped_ranks: int = 0


def stable_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def refuse_pickles(logging_dir: Path) -> None:
    """Earlier versions wrote ``output/*.pkl``; such a file is never loaded (it could run code), and the stage stops."""
    found = sorted((logging_dir / "output").glob("*.pkl")) if (logging_dir / "output").is_dir() else []
    if found:
        raise StepOutputError(f"{found[0]}: pickled step outputs are refused (loading one can run code); "
                              f"delete {logging_dir} and rerun")


def part_path(logging_dir: Path, rank: int) -> Path:
    return Path(logging_dir) / "output" / f"{rank:05d}.parquet"


def rejections_path(logging_dir: Path, rank: int) -> Path:
    return Path(logging_dir) / "output" / f"{rank:05d}.rejections.parquet"


def plan_hashes(rows: Iterable[dict], world_size: int) -> tuple[str, list[str], int]:
    """``stable_hash(rows)`` and ``stable_hash(rows[r::world_size])`` for every rank, in one pass over ``rows``
    (an iterable: nothing is kept), and the number of rows. The same digests as hashing the lists."""
    total = hashlib.sha256(b"[")
    per_rank = [hashlib.sha256(b"[") for _ in range(world_size)]
    seen = [0] * world_size
    n = 0
    for n, row in enumerate(rows, 1):
        text = json.dumps(row, sort_keys=True, default=str).encode()
        total.update(b", " + text if n > 1 else text)
        r = (n - 1) % world_size
        per_rank[r].update(b", " + text if seen[r] else text)
        seen[r] += 1
    total.update(b"]")
    for h in per_rank:
        h.update(b"]")
    return total.hexdigest(), [h.hexdigest() for h in per_rank], n


def shards_for(rows: Iterable[dict], world_size: int, ranks: Sequence[int]) -> dict[int, list[dict]]:
    """``{r: rows[r::world_size]}`` for ``ranks`` only, in one pass over ``rows``."""
    wanted = set(ranks)
    shards: dict[int, list[dict]] = {r: [] for r in ranks}
    if not wanted:
        return shards
    for i, row in enumerate(rows):
        r = i % world_size
        if r in wanted:
            shards[r].append(row)
    return shards


def _counted(rows: Iterable[dict], ctx: StepContext, clock: list) -> Iterator[dict]:
    """Count rows entering a step and measure the time spent pulling them (its upstream's time)."""
    it = iter(rows)
    while True:
        t0 = time.perf_counter()
        try:
            row = next(it)
        except StopIteration:
            clock[0] += time.perf_counter() - t0
            return
        clock[0] += time.perf_counter() - t0
        ctx.rows_in += 1
        yield row


def run_rank(steps: Sequence[Step], rows: list[dict], rank: int, world_size: int, logging_dir: str,
             key: Sequence[str] | None = None, columns: Sequence[str] = ()) -> dict:
    """Run every step over one shard and persist its output (a part file sorted by ``key``, ``columns`` stored as
    Parquet columns), stats and completion marker. Module-level so it pickles."""
    logging_dir = Path(logging_dir)
    started = time.perf_counter()
    contexts = []
    data: Iterable[dict] = rows
    clocks = []
    for step in steps:
        ctx = step.start_rank(rank, world_size)
        upstream_clock = [0.0]
        data = step.run(_counted(data, ctx, upstream_clock), rank, world_size)
        contexts.append(ctx)
        clocks.append(upstream_clock)
    # Pulling the last step's output through the same counter times it like every other step.
    sink = StepContext("output")
    last_clock = [0.0]
    out = list(_counted(data, sink, last_clock))
    # A step's own time is the time its output took minus the time it spent waiting on its input.
    totals = [c[0] for c in clocks[1:]] + [last_clock[0]]
    for ctx, total, upstream in zip(contexts, totals, clocks):
        ctx.seconds = max(0.0, total - upstream[0])
    for ctx, nxt in zip(contexts, contexts[1:]):
        ctx.rows_out = nxt.rows_in
    if contexts:
        contexts[-1].rows_out = len(out)
    rejections = [r for ctx in contexts for r in ctx.rejections]
    stats = {
        "rank": rank,
        "world_size": world_size,
        "rows_in": len(rows),
        "rows_out": len(out),
        "seconds": round(time.perf_counter() - started, 6),
        "steps": [ctx.to_dict() for ctx in contexts],
        # a step may leave a short note for the progress bar (bench: the clip's first metric)
        "note": next((c.note for c in reversed(contexts) if getattr(c, "note", None)), None),
    }
    write_part(part_path(logging_dir, rank), out, key=key, columns=columns)
    write_rejections(rejections_path(logging_dir, rank), rejections)
    atomic_write_text(logging_dir / f"{rank:05d}.json", json.dumps(stats, indent=1, sort_keys=True))
    atomic_write_text(logging_dir / "completions" / f"{rank:05d}", "done\n")
    return stats


class Executor:
    """Base executor: plans ranks, skips completed ones, merges outputs. Subclasses run the pending ranks."""

    name = "base"

    def __init__(self, workers: int = 1, tasks: int | None = None, quiet: bool = False):
        self.workers = max(1, int(workers))
        self.tasks = tasks
        self.quiet = quiet

    def world_size_for(self, n_rows: int) -> int:
        # One rank per row (capped) makes resume fine-grained and does not depend on the worker count.
        return max(1, min(n_rows, self.tasks or MAX_TASKS))

    def run(self, steps: Sequence[Step], rows: Iterable[dict], logging_dir: str | Path, *, config: dict | None = None,
            description: str = "", resources: dict | None = None, key: Sequence[str] | None = None,
            columns: Sequence[str] = ()) -> StageResult:
        """Run the pending ranks and merge. ``resources``: what one rank of this stage needs (``num_cpus``,
        ``num_gpus``, ``memory`` in bytes); executors that schedule tasks (Ray) ask for it, the local one ignores it.

        ``rows``: a list, or any iterable with ``len`` that can be iterated twice (a previous stage's ``MergedRows``):
        one pass hashes the ranks' inputs, a second collects the rows of the ranks that still have to run, so a
        rerun of a finished stage holds no rows. ``key``: the columns the output is sorted by (the merge is a k-way
        merge of the parts by it; rank order without one). ``columns``: columns to store as Parquet columns besides
        the key ones, for ``MergedRows.read_columns``.
        """
        logging_dir = Path(logging_dir)
        refuse_pickles(logging_dir)
        if not hasattr(rows, "__len__"):
            rows = list(rows)
        world_size = self.world_size_for(len(rows))
        input_hash, rank_hashes, _ = plan_hashes(rows, world_size)
        key, columns = list(key or ()), list(columns or ())
        plan = {
            "world_size": world_size,
            "input_hash": input_hash,
            "config_hash": stable_hash(config if config is not None else [type(s).__name__ for s in steps]),
            "rank_hashes": rank_hashes,
            "output": {"format": PART_FORMAT, "key": key, "columns": columns},
        }
        stage_file = logging_dir / "stage.json"
        if stage_file.exists():
            try:
                previous = json.loads(stage_file.read_text())
            except (OSError, json.JSONDecodeError):
                previous = None
            if previous != plan:
                same_layout = (isinstance(previous, dict) and previous.get("world_size") == world_size
                               and previous.get("config_hash") == plan["config_hash"]
                               and previous.get("output") == plan["output"]
                               and len(previous.get("rank_hashes") or []) == world_size)
                # Same config and world size: only the ranks whose input rows changed are stale. Otherwise the old
                # ranks describe another job.
                stale = ([r for r, h in enumerate(plan["rank_hashes"]) if previous["rank_hashes"][r] != h]
                         if same_layout else None)
                self._forget(logging_dir, stale)
        logging_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(stage_file, json.dumps(plan, sort_keys=True))
        pending = [r for r in range(world_size) if not (logging_dir / "completions" / f"{r:05d}").exists()]
        if pending:
            shards = shards_for(rows, world_size, pending)
            self.run_ranks(steps, shards, world_size, logging_dir, description or logging_dir.name,
                           resources=resources, key=key, columns=columns)
            del shards
        return self.merge(logging_dir, world_size, skipped=world_size - len(pending), key=key)

    @staticmethod
    def _forget(logging_dir: Path, ranks: list[int] | None) -> None:
        """Remove the completion marker, output and stats of ``ranks`` (every rank when None)."""
        if ranks is None:
            for sub in ("completions", "output"):
                shutil.rmtree(logging_dir / sub, ignore_errors=True)
            for f in logging_dir.glob("[0-9][0-9][0-9][0-9][0-9].json"):
                f.unlink()
            return
        for r in ranks:
            for f in (logging_dir / "completions" / f"{r:05d}", part_path(logging_dir, r),
                      rejections_path(logging_dir, r), logging_dir / f"{r:05d}.json"):
                f.unlink(missing_ok=True)

    def run_ranks(self, steps, shards: dict[int, list[dict]], world_size: int, logging_dir: Path, description: str,
                  resources: dict | None = None, key: Sequence[str] | None = None, columns: Sequence[str] = ()):
        raise NotImplementedError

    def merge(self, logging_dir: Path, world_size: int, skipped: int = 0,
              key: Sequence[str] | None = None) -> StageResult:
        """The stage's rows as a lazy merge over the rank parts (:class:`MergedRows`: about one row group per part
        in memory), its rejections (a list, read rank by rank) and summed stats. Every part's footer and format is
        checked here, so a foreign file stops the stage before any row is used."""
        logging_dir = Path(logging_dir)
        rows = MergedRows([part_path(logging_dir, r) for r in range(world_size)], key=key)
        len(rows)  # opens every part: format and footer checked now
        rejections = list(iter_rejections(rejections_path(logging_dir, r) for r in range(world_size)))
        per_rank = [json.loads((logging_dir / f"{rank:05d}.json").read_text()) for rank in range(world_size)]
        stats = summarise_stats(per_rank)
        atomic_write_text(logging_dir / "summary.json", json.dumps(stats, indent=1, sort_keys=True))
        return StageResult(rows, rejections, stats, skipped)

    def progress(self, total: int, description: str):
        from .progress import Bar

        return Bar(total, description, self.quiet)


def summarise_stats(per_rank: list[dict]) -> dict:
    """Sum per-rank stats into one stage summary (counts and drops by reason per step)."""
    steps: dict[str, dict] = {}
    order: list[str] = []
    for stats in per_rank:
        for s in stats["steps"]:
            if s["name"] not in steps:
                order.append(s["name"])
                steps[s["name"]] = {"name": s["name"], "rows_in": 0, "rows_out": 0, "dropped": {}, "counters": {},
                                    "seconds": 0.0}
            agg = steps[s["name"]]
            agg["rows_in"] += s["rows_in"]
            agg["rows_out"] += s["rows_out"]
            agg["seconds"] = round(agg["seconds"] + s["seconds"], 6)
            for key in ("dropped", "counters"):
                for k, v in s[key].items():
                    agg[key][k] = agg[key].get(k, 0) + v
    return {
        "ranks": len(per_rank),
        "rows_in": sum(s["rows_in"] for s in per_rank),
        "rows_out": sum(s["rows_out"] for s in per_rank),
        "steps": [steps[n] for n in order],
    }


def _advance(bar, stats: dict) -> None:
    """One rank finished: its failures (``failed`` counters, dropped rows) and note go to the progress bar."""
    failed = sum(step.get("counters", {}).get("failed", 0) for step in stats.get("steps", []))
    bar.advance(failed=failed, note=stats.get("note"))


class LocalExecutor(Executor):
    """Runs ranks in this process (workers=1) or in a spawn-based process pool."""

    name = "local"

    def run_ranks(self, steps, shards, world_size, logging_dir, description, resources=None, key=None, columns=()):
        with self.progress(len(shards), description) as bar:
            if self.workers == 1:
                for rank, shard in shards.items():
                    _advance(bar, run_rank(steps, shard, rank, world_size, str(logging_dir), key, columns))
                return
            import multiprocessing as mp
            from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

            # spawn, not fork: torch, onnxruntime and mediapipe hold threads that fork would copy in a bad state.
            with ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(run_rank, steps, shard, rank, world_size, str(logging_dir), key, columns)
                           for rank, shard in shards.items()]
                not_done = set(futures)
                while not_done:
                    done, not_done = wait(not_done, timeout=5.0, return_when=FIRST_EXCEPTION)
                    for future in done:
                        # re-raises a rank's failure; completed ranks stay marked for the rerun
                        _advance(bar, future.result())
                    bar.tick()
