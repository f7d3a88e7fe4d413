"""Executor overhead: a plain Python loop against LocalExecutor (1 and 2 workers) and RayExecutor (a local cluster)
on N tiny files. Every variant does the same work per file (read it, sha256 it, parse a number) through the same
steps; the difference is what the executor adds (ranks, pickled outputs, stats JSON, completion markers, fsyncs).

    python benchmarks/executor_overhead.py [--files 200] [--no-ray]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from talkbench.runtime import Filter, Step, make_executor


class HashFile(Step):
    def run(self, rows, rank=0, world_size=1):
        for row in rows:
            data = Path(row["path"]).read_bytes()
            yield {**row, "sha256": hashlib.sha256(data).hexdigest(), "value": int(data.split(b"\n")[0])}


class KeepEven(Filter):
    def filter(self, row):
        return True if row["value"] % 2 == 0 else (False, "odd", row["value"])


def plain_loop(rows):
    steps = [HashFile(), KeepEven()]
    from talkbench.runtime.step import StepContext

    data = rows
    for step in steps:
        step.ctx = StepContext(step.name)
        data = step.run(data)
    return list(data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tb-execbench-"))
    try:
        rows = []
        for i in range(args.files):
            p = work / "files" / f"{i:04d}.txt"
            p.parent.mkdir(exist_ok=True)
            p.write_text(f"{i}\n" + "x" * 1000)
            rows.append({"item_id": f"f{i}", "path": str(p)})
        results = []
        t0 = time.perf_counter()
        reference = plain_loop(rows)
        results.append(("plain loop", time.perf_counter() - t0, None, len(reference)))
        variants = [("local, 1 worker", "local", 1), ("local, 2 workers", "local", 2)]
        if not args.no_ray:
            variants.append(("ray, 2 CPUs", "ray", 2))
        for label, kind, workers in variants:
            executor = make_executor(kind, workers=workers, quiet=True)
            startup = None
            if kind == "ray":
                import ray

                os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway loopback cluster: no token file in ~

                s0 = time.perf_counter()
                ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
                startup = time.perf_counter() - s0
            t0 = time.perf_counter()
            out = executor.run([HashFile(), KeepEven()], rows, work / f"stats-{kind}-{workers}").rows
            elapsed = time.perf_counter() - t0
            assert sorted(r["item_id"] for r in out) == sorted(r["item_id"] for r in reference)
            t1 = time.perf_counter()
            executor.run([HashFile(), KeepEven()], rows, work / f"stats-{kind}-{workers}")
            resume = time.perf_counter() - t1
            results.append((label, elapsed, (startup, resume), len(out)))
            if kind == "ray":
                ray.shutdown()
        base = results[0][1]
        print(f"{args.files} tiny files, {args.files} ranks (one per file), same steps everywhere")
        print(f"{'variant':<18} {'wall s':>8} {'ms/file':>8} {'overhead ms/file':>17} {'rerun s':>8} {'startup s':>10}")
        for label, elapsed, extra, n in results:
            startup = f"{extra[0]:.2f}" if extra and extra[0] is not None else "-"
            rerun = f"{extra[1]:.3f}" if extra else "-"
            print(f"{label:<18} {elapsed:>8.3f} {elapsed / args.files * 1e3:>8.2f} "
                  f"{(elapsed - base) / args.files * 1e3:>17.2f} {rerun:>8} {startup:>10}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
