"""Time saved by the reference-statistics cache: `bench run` of gt, then static, on the demo's curated clips.

    python benchmarks/reference_cache.py --demo /tmp/tb-demo [--limit N]

Random FID-Inception and I3D files in the official formats go into a throwaway TALKBENCH_HOME (the FID network is
the real architecture; the I3D stand-in is small, so the FVD share is not representative), and only the
set-level metrics are timed. Rows: the first method (ground-truth statistics computed and stored), the second
(read back), and the second again with the cache emptied (the reference: what every method paid before).
The set-level stage's wall time is read from the executor's stats; values must be equal with and without the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_run import make_demo  # noqa: E402


def run(manifest: Path, out: Path, method: str, split: str, limit: int | None) -> dict:
    from talkbench.bench.run import BenchConfig, run_bench

    t0 = time.perf_counter()
    result = run_bench(BenchConfig(method=method, task="self-reenact", manifest=str(manifest), out=str(out),
                                   split=split, limit=limit, quiet=True, n_boot=50))
    total = time.perf_counter() - t0
    steps = json.loads((out / "stats" / "set" / "summary.json").read_text())["steps"]
    rows = {r["metric"]: r for r in result.rows if r["clip_id"] is None}
    return {"total": total, "set": sum(s["seconds"] for s in steps), "clips": result.n_jobs,
            "values": {m: r["value"] for m, r in rows.items()},
            "status": {m: json.loads(r["extra"] or "{}").get("reference_stats") for m, r in rows.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, required=True, help="folder for demo make + curate (reused when present)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="tb-refcache-home-"))
    os.environ["TALKBENCH_HOME"] = str(home)
    from talkbench.metrics import random_weights

    random_weights.install_random(["fid-inception", "i3d"])
    manifest = make_demo(args.demo)
    import torch

    print(f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="tb-refcache-") as work:
        work = Path(work)
        rows = [("gt (computes + stores)", run(manifest, work / "gt", "gt", args.split, args.limit))]
        rows.append(("static (cache hit)", run(manifest, work / "static", "static", args.split, args.limit)))
        shutil.rmtree(home / "cache" / "reference_stats")
        rows.append(("static (cache emptied)", run(manifest, work / "static-cold", "static", args.split, args.limit)))
    print(f"| {'run':<24} | clips | total s | set-level s | reference_stats | values |")
    print(f"|{'-' * 26}|-------|---------|-------------|-----------------|--------|")
    for name, r in rows:
        values = ", ".join(f"{m} {v:.6g}" if v is not None else f"{m} null" for m, v in sorted(r["values"].items()))
        status = ", ".join(f"{m} {s}" for m, s in sorted(r["status"].items()))
        print(f"| {name:<24} | {r['clips']:>5} | {r['total']:>7.1f} | {r['set']:>11.1f} | {status} | {values} |")
    hit, cold = rows[1][1], rows[2][1]
    print(f"saved per later method: {cold['set'] - hit['set']:.1f} s of {cold['set']:.1f} s set-level "
          f"({100 * (cold['set'] - hit['set']) / max(cold['set'], 1e-9):.0f}%); values equal: "
          f"{hit['values'] == cold['values']}")
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
