"""The global curation stages at 10k, 100k and (if asked) 1M candidate clips: time, peak memory, accuracy.

Inputs are synthetic but shaped like VoxCeleb2 (6.7 clips per video, 170 clips per speaker, Zipf-skewed videos
per speaker): source rows, candidate track rows and 128-d embeddings from a mixture of identities whose spread is
set to dlib descriptors of the real faces of benchmarks/identity_accuracy.py (``--spread dlib``, the default:
largest same-person distance 0.037; different-person median 0.141 and std 0.024) or to the first, tail-only
calibration (``--spread v1``: smallest different-person distance 0.064; packs people 9× closer than dlib's
documented LFW accuracy allows). See talkbench.curation.scale and docs/scale.md.

Stages, as `curate build-manifest` runs them after the per-video steps:
  identity  — clustering.cluster_scalable through scale.assign_identities_columns (k-NN graph above 4096 rows)
  select    — select.select_stream over candidates made one at a time in identity order (2–3 clips per identity);
              its rejections go straight to rejections.parquet (manifests.stream.write_table_sorted, 100k-row runs)
  split     — split.split_stream (by identity, a chunk at a time)
  manifests — sources and clips written with manifests.stream.write_table_chunks (100k-row groups)

Each size runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own. Printed: wall time and peak RSS per
size, seconds per stage, pair precision/recall/F1 of the identities against the synthetic truth, and the growth
exponent of the total time fitted over the sizes run (log time vs log n).

    python benchmarks/curation_scale.py                 # 10k and 100k
    python benchmarks/curation_scale.py --sizes 10000 100000 1000000
    python benchmarks/curation_scale.py --exact-check 20000   # k-NN graph vs exact linkage, same embeddings
    python benchmarks/curation_scale.py --spread v1           # the first calibration
    python benchmarks/curation_scale.py --merge 100000        # the driver between identity and cluster (below)

``--merge N``: the driver's side of the per-video → global boundary. N synthetic candidate rows shaped like the real
identity stage's (45 fields, 12 face samples, a 128-d float64 embedding; ~7 per video) are written by the executor
as rank parts (one rank per video, 1,024 ranks), then, each in a fresh process, the driver merges them and runs the
``cluster`` and ``select`` stages: ``stream`` (the stage's lazy k-way merge, the embedding matrix read from two
columns, rows handed on without embeddings) against ``lists`` (every row read into one list of dicts first, as the
executor's merge did before). ``--src DIR`` runs it on another source tree (e.g. an older checkout: its ``lists``).

The load average (1-minute, from os.getloadavg) is printed before and after each size: on a shared machine wall
time depends on it, CPU seconds much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SRC = sys.argv[sys.argv.index("--src") + 1] if "--src" in sys.argv else str(ROOT / "src")
sys.path.insert(0, SRC)

THRESHOLD = 0.07  # identity.DEFAULT_THRESHOLDS["dlib"]
CHUNK = 100_000


def _chunks(rows, size=CHUNK):
    for s in range(0, len(rows), size):
        yield rows[s:s + size]


def _log(stage: str, t0: float) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    print(f"  {stage} done at {time.perf_counter() - t0:.1f} s wall, {cpu.ru_utime + cpu.ru_stime:.1f} s CPU, "
          f"peak {peak:.2f} GiB", file=sys.stderr, flush=True)


def _spread(name: str) -> dict:
    from talkbench.curation.scale import SPREADS

    within, between, sigma = SPREADS[name]
    return {"within": within, "between": between, "between_sigma": sigma}


def exact_check(n: int, seed: int = 0, spread: str = "dlib") -> None:
    """The k-NN graph path against today's exact pdist linkage on the same synthetic embeddings (n² / 2 distances)."""
    from talkbench.curation.clustering import ClusterStats, cluster_scalable, pair_scores
    from talkbench.curation.identity import cluster_embeddings
    from talkbench.curation.scale import synthetic_candidates

    syn = synthetic_candidates(n, seed=seed, **_spread(spread))
    x = syn.embeddings.astype(np.float64)
    t = time.perf_counter()
    exact = cluster_embeddings(x, THRESHOLD)
    te = time.perf_counter() - t
    stats = ClusterStats()
    t = time.perf_counter()
    fast = cluster_scalable(x, THRESHOLD, exact_below=0, stats=stats)
    tf = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"exact check n={n:,} spread {spread}: identical={fast.tolist() == exact.tolist()}; exact {te:.1f} s, "
          f"k-NN graph {tf:.1f} s; "
          f"peak {peak:.2f} GiB")
    for name, ref in (("exact", exact), ("truth", syn.truth)):
        p, r, f1 = pair_scores(ref, fast)
        print(f"  k-NN graph vs {name}: pair P {p:.5f} R {r:.5f} F1 {f1:.5f}")
    p, r, f1 = pair_scores(syn.truth, exact)
    print(f"  exact vs truth: pair P {p:.5f} R {r:.5f} F1 {f1:.5f}")


def run_one(n: int, seed: int = 0, spread: str = "dlib") -> dict:
    from talkbench.curation.clustering import ClusterStats, pair_scores
    from talkbench.curation.config import SelectConfig, SplitConfig
    from talkbench.curation.scale import assign_identities_columns, synthetic_candidates
    from talkbench.curation.select import select_stream
    from talkbench.curation.split import split_stream
    from talkbench.manifests.stream import write_table_chunks, write_table_sorted

    times = {}
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    syn = synthetic_candidates(n, seed=seed, **_spread(spread))
    times["generate"] = time.perf_counter() - t0
    _log("generate", t0)

    t = time.perf_counter()
    stats = ClusterStats()
    ids, scores = assign_identities_columns(syn.candidate_ids, syn.embeddings, THRESHOLD, stats=stats)
    times["identity"] = time.perf_counter() - t
    _, pred = np.unique(np.array(ids), return_inverse=True)
    precision, recall, f1 = pair_scores(syn.truth, pred)
    _log(f"identity ({stats.method}, {stats.edges:,} edges, largest component {stats.largest_component:,})", t0)

    folder = tempfile.TemporaryDirectory()
    out = Path(folder.name)
    t = time.perf_counter()
    # Candidates made one at a time in identity order, as the cluster stage hands them on: select_stream holds one
    # identity, and its rejections go straight to rejections.parquet (write_table_sorted: sorted runs spilled to
    # disk, then merged), so no list of n rows is ever built.
    order = sorted(range(n), key=ids.__getitem__)  # stable: candidate order within an identity

    def candidates():
        for i in order:
            yield {"candidate_id": syn.candidate_ids[i], "source_id": syn.source_ids[i], "identity_id": ids[i],
                   "identity_score": float(scores[i]), "start_s": float(syn.start_s[i]), "end_s": float(syn.end_s[i]),
                   "yaw_max": float(syn.yaw_max[i]), "sharpness": float(syn.sharpness[i])}

    selected, rejected = [], [0]

    def rejections():
        for chosen, dropped in select_stream([candidates()], SelectConfig()):
            selected.extend(chosen)
            rejected[0] += len(dropped)
            yield from dropped

    write_table_sorted(rejections(), out / "rejections.parquet", "rejections", chunk_rows=CHUNK)
    times["select"] = time.perf_counter() - t
    _log("select (rejections written)", t0)

    t = time.perf_counter()
    split_rows = [r for chunk in split_stream(_chunks(selected), {r["identity_id"] for r in selected}, SplitConfig())
                  for r in chunk]
    times["split"] = time.perf_counter() - t

    t = time.perf_counter()
    with folder:
        sources = [{"source_id": f"vid{v:07d}", "dataset": "table", "platform": "local",
                    "local_path": f"videos/vid{v:07d}.mp4"} for v in range(syn.n_videos)]
        write_table_chunks(_chunks(sources), out / "sources.parquet", "sources")
        del sources
        clips = sorted(({"clip_id": r["candidate_id"].replace("/", "-"), "source_id": r["source_id"],
                         "identity_id": r["identity_id"], "identity_score": r["identity_score"],
                         "start_s": r["start_s"], "end_s": r["end_s"], "split": r["split"]} for r in split_rows),
                       key=lambda r: r["clip_id"])
        write_table_chunks(_chunks(clips), out / "clips.parquet", "clips")
        sizes = {p.name: p.stat().st_size for p in out.glob("*.parquet")}
    times["manifests"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"n": n, "videos": syn.n_videos, "identities_true": syn.n_identities,
            "identities_found": int(pred.max()) + 1, "selected": len(selected), "rejected": rejected[0],
            "pair_p": precision, "pair_r": recall, "pair_f1": f1, "seconds": times, "total_s": total,
            "cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
            "peak_rss_gib": peak_kib / 2**20, "method": stats.method, "edges": stats.edges,
            "saturated": stats.saturated, "largest_component": stats.largest_component,
            "graph_linkage_components": stats.graph_linkage_components, "manifest_bytes": sizes,
            "identity_cpu_s": stats.extra.get("cpu_s", {}), "nlist": stats.nlist, "k": stats.k,
            "nprobe": stats.nprobe, "load": [round(load_before, 2), round(os.getloadavg()[0], 2)], "spread": spread}


# ----------------------------------------------------------------------------------------------------------------
# --merge: the driver between the identity stage (per video, on the executor) and the global stages
# ----------------------------------------------------------------------------------------------------------------

PER_VIDEO = 7


def _videos(n: int) -> list[dict]:
    v = max(1, n // PER_VIDEO)
    return [{"video": i, "first": i * n // v, "stop": (i + 1) * n // v} for i in range(v)]


def _candidate_step(n: int):
    from talkbench.runtime import Step

    class CandidateRows(Step):
        """One video → its candidates as the identity stage outputs them (fields of a real demo row)."""

        def run(self, rows, rank=0, world_size=1):
            from talkbench.curation.scale import synthetic_candidates

            if getattr(self, "_lazy_emb", None) is None:
                self._lazy_emb = synthetic_candidates(n, seed=0).embeddings
            for video in rows:
                for i in range(video["first"], video["stop"]):
                    e = np.asarray(self._lazy_emb[i], dtype=np.float64)
                    e = e / np.linalg.norm(e)
                    k = i - video["first"]
                    src = f"v{video['video']:06d}"
                    yield {"source_id": src, "segment_index": 0, "path": f"media/normalised/{src}/0.mp4",
                           "abs_path": f"/data/run/media/normalised/{src}/0.mp4", "fps": 25.0, "n_frames": 250,
                           "has_audio": True, "source_label": "speaker", "width": 1280, "height": 720,
                           "segment_start": 0.0, "out_dir": "/data/run", "shot_index": k, "shot_start_frame": 0,
                           "shot_end_frame": 250, "n_shots": PER_VIDEO, "candidate_id": f"{src}/0/{k}/0",
                           "track_id": 0, "start_frame": 0, "end_frame": 200, "start_s": 0.0, "end_s": 8.0,
                           "frame_width": 1280, "frame_height": 720,
                           "samples": [{"frame": f * 16, "box": [321.05 + f, 208.23, 648.43, 535.6], "score": 0.91,
                                        "landmarks5": [[421.43 + f, 312.4], [540.1, 310.2], [480.0, 380.5],
                                                       [430.2, 440.1], [530.7, 438.9]]} for f in range(12)],
                           "crop_x0": 157, "crop_y0": 41, "crop_size": 652, "crop_margin": 0.4,
                           "crop_padded": False, "face_size_median": 325.3, "face_size_min": 313.8,
                           "face_size_max": 331.9, "second_face_ratio": 0.0, "sharpness": 175.0 + i % 97,
                           "yaw_max": float(i % 13), "yaw_mean": 0.78, "pitch_max": 11.9, "pitch_mean": 10.7,
                           "roll_max": 6.4, "roll_mean": 2.5, "detector_backend": "mediapipe",
                           "detector_model": "blazeface_full_range_sparse+face_mesh_468",
                           "embedding": [float(x) for x in e], "identity_backend": "dlib",
                           "identity_model": "dlib_face_recognition_resnet_model_v1"}

    CandidateRows.__qualname__ = CandidateRows.__name__ = "CandidateRows"
    return CandidateRows()


def _identity_stage(n: int, folder: Path):
    """The identity stage's result: runs the ranks the first time, only merges afterwards."""
    import inspect

    from talkbench.runtime import make_executor

    executor = make_executor("local", quiet=True)
    options = {}
    if "key" in inspect.signature(executor.run).parameters:  # not in an older source tree (--src)
        from talkbench.curation.stages import STAGES

        identity = next(stage for stage in STAGES if stage.name == "identity")
        options = {"key": identity.key, "columns": identity.columns}
    return executor.run([_candidate_step(n)], _videos(n), folder / "identity", config={"bench": n}, **options)


def merge_driver(n: int, folder: Path, mode: str) -> dict:
    """In a fresh process: merge the identity stage, then cluster and select, as the pipeline's driver does."""
    import hashlib
    from types import SimpleNamespace

    from talkbench.curation import stages
    from talkbench.curation.config import CurationConfig

    run = SimpleNamespace(identity_backend="dlib", config=CurationConfig())
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    result = _identity_stage(n, folder)
    rows = list(result.rows) if mode == "lists" else result.rows
    merged_at = time.perf_counter() - t0
    identified, rejections, counters = stages._cluster(run, rows)
    clustered_at = time.perf_counter() - t0
    digest = hashlib.sha256(json.dumps([(r["candidate_id"], r["identity_id"], r["identity_score"])
                                        for r in identified]).encode()).hexdigest()[:16]
    selected, _, _ = stages._select(run, identified)
    return {"n": n, "mode": mode, "src": SRC, "skipped_ranks": result.skipped_ranks,
            "merge_s": round(merged_at, 1), "cluster_s": round(clustered_at - merged_at, 1),
            "total_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
            "identities": counters["identities"], "selected": len(selected), "clusters_sha256": digest,
            "base_rss_gib": round(base, 3),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "load": [round(load0, 1), round(os.getloadavg()[0], 1)]}


def merge_bench(n: int, folder: Path, modes: list[str], timeout: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    src = ["--src", SRC] if SRC != str(ROOT / "src") else []
    subprocess.run([sys.executable, __file__, "--merge-make", str(n), "--dir", str(folder), *src], check=True,
                   timeout=timeout)
    print(f"identity stage parts for {n:,} candidates written in {time.perf_counter() - t0:.1f} s "
          f"({sum(p.stat().st_size for p in (folder / 'identity' / 'output').iterdir()) / 2**20:.0f} MiB)")
    print("| n | driver | merge s | cluster s | total s | CPU s | RSS after imports | peak RSS | identities | "
          "selected | clusters sha256 | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for mode in modes:
        proc = subprocess.run([sys.executable, __file__, "--merge-driver", str(n), "--dir", str(folder), "--mode", mode,
                               *src], capture_output=True, text=True, timeout=timeout, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"| {n:,} | {mode} | {r['merge_s']} | {r['cluster_s']} | {r['total_s']} | {r['cpu_s']} | "
              f"{r['base_rss_gib']:.2f} GiB | {r['peak_rss_gib']:.2f} GiB | {r['identities']:,} | {r['selected']:,} | "
              f"{r['clusters_sha256']} | {r['load'][0]} / {r['load'][1]} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per size before it is abandoned")
    ap.add_argument("--exact-check", type=int, metavar="N",
                    help="only compare the k-NN graph path with exact linkage at N rows (20000 needs ~4 GB)")
    ap.add_argument("--spread", choices=["dlib", "v1"], default="dlib",
                    help="embedding spread: dlib (measured bulk, default) or v1 (the first, tail-only calibration)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--merge", type=int, metavar="N", help="only the driver between identity and cluster at N rows")
    ap.add_argument("--modes", nargs="+", choices=["stream", "lists"], default=["lists", "stream"])
    ap.add_argument("--dir", help="folder for --merge's stage outputs (default: a temporary one)")
    ap.add_argument("--src", help="source tree to import talkbench from (default: this checkout's src)")
    ap.add_argument("--merge-make", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--merge-driver", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.merge_make:
        result = _identity_stage(args.merge_make, Path(args.dir))
        print(f"ranks skipped: {result.skipped_ranks}", file=sys.stderr)
        return
    if args.merge_driver:
        print(json.dumps(merge_driver(args.merge_driver, Path(args.dir), args.mode)))
        return
    if args.merge:
        if args.dir:
            merge_bench(args.merge, Path(args.dir), args.modes, args.timeout)
        else:
            with tempfile.TemporaryDirectory(prefix="talkbench-merge-") as folder:
                merge_bench(args.merge, Path(folder), args.modes, args.timeout)
        return
    if args.exact_check:
        exact_check(args.exact_check, spread=args.spread)
        return
    if args.one:
        print(json.dumps(run_one(args.one, spread=args.spread)))
        return
    results = []
    for n in args.sizes:
        try:
            proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--spread", args.spread],
                                  capture_output=True, text=True,
                                  timeout=args.timeout, check=True)
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            print(f"n={n}: over {args.timeout:.0f} s, abandoned; progress so far:\n{err.rstrip()}")
            break
        except subprocess.CalledProcessError as exc:
            print(f"n={n}: failed: {exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else exc}")
            break
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(proc.stderr.rstrip())
        print(f"n={n}: {r['total_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, {r['peak_rss_gib']:.2f} GiB; load average "
              f"{r['load'][0]} before, {r['load'][1]} after; identity CPU s by part {r['identity_cpu_s']} "
              f"(nlist {r['nlist']}, k {r['k']}, nprobe {r['nprobe']})", flush=True)
    if not results:
        return
    print()
    print(f"spread: {args.spread}")
    print("| n | videos | ids true | ids found | pair P | pair R | pair F1 | identity s | select s | split s | "
          "manifests s | total wall s | CPU s | peak RSS GiB | graph edges | largest comp | load avg (before/after) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r["seconds"]
        print(f"| {r['n']:,} | {r['videos']:,} | {r['identities_true']:,} | {r['identities_found']:,} | "
              f"{r['pair_p']:.4f} | {r['pair_r']:.4f} | {r['pair_f1']:.4f} | {s['identity']:.1f} | {s['select']:.1f} | "
              f"{s['split']:.2f} | {s['manifests']:.1f} | {r['total_s']:.1f} | {r['cpu_s']:.1f} | "
              f"{r['peak_rss_gib']:.2f} | {r['edges']:,} | {r['largest_component']:,} | "
              f"{r['load'][0]} / {r['load'][1]} |")
    if len(results) >= 2:
        n = np.log([r["n"] for r in results])
        for key in ("total_s", "cpu_s", "identity"):
            y = np.log([r[key] if key in ("total_s", "cpu_s") else r["seconds"][key] for r in results])
            print(f"growth exponent ({key}): {np.polyfit(n, y, 1)[0]:.2f}  (time ∝ n^b, fitted on {len(results)} sizes)")
        y = np.log([r["peak_rss_gib"] for r in results])
        print(f"growth exponent (peak RSS): {np.polyfit(n, y, 1)[0]:.2f}")
    goal = [r for r in results if r["n"] >= 1_000_000]
    if goal:
        r = goal[0]
        ok = r["total_s"] < 900 and r["peak_rss_gib"] < 8 and r["pair_f1"] >= 0.99
        print(f"1M goal (< 15 min, < 8 GiB, pair F1 ≥ 0.99): {'met' if ok else 'NOT met'}")
    else:
        last = results[-1]
        b = np.polyfit(np.log([r["n"] for r in results]), np.log([r["total_s"] for r in results]), 1)[0] \
            if len(results) >= 2 else 1.0
        est = last["total_s"] * (1_000_000 / last["n"]) ** b
        print(f"1M not run: extrapolated total ≈ {est:.0f} s (EXTRAPOLATION from n={last['n']:,} with b={b:.2f})")


if __name__ == "__main__":
    main()
