"""`bench run`: generate every job's video with a method, score it under a protocol, write results and a summary.

Layout of OUT:

    run.json              what this folder holds (method, task, protocol, split, manifest); another run is refused
    videos/<clip_id>.mp4  the generated video with the clip's audio muxed, to watch
    cache/<clip_id>.mkv   the generated frames, lossless (FFV1), the input of the set-level metrics
    clips/<clip_id>.json  per-clip result rows + timings; a clip with a valid file is skipped on rerun
    stats/clips/, stats/set/  executor logging dirs (per-rank stats, completion markers)
    results.parquet       one row per clip × metric, plus the set-level rows (clip_id null)
    summary.json          mean and 95 % bootstrap CI per metric, null reasons, missing-weights install hints

Set-level metrics (FID, FID-clean, FVD) need features of every clip. Per-clip steps run the per-clip metrics and
keep the generated frames losslessly under ``cache/``; one final step (a single rank on the same executor, so it gets
the GPU under Ray) decodes every cached video with its reference clip into one Evaluator and calls ``finalize``.
Nothing set-level is computed twice, and the reduction reads exactly the frames the per-clip metrics saw.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ConfigError, ManifestError, MediaError, TalkbenchError
from ..manifests.io import atomic_write_text, read_table, write_table
from ..runtime import Step, make_executor, stable_hash
from .methods import Inputs, Method, OutputError, dumps_extra, make_method
from .tasks import Task, get_task, make_jobs

DEFAULT_PROTOCOL = "talkbench-v1-256"


@dataclass
class BenchConfig:
    method: str
    task: str
    manifest: str
    out: str
    split: str = "test"
    limit: int | None = None
    protocol: str = DEFAULT_PROTOCOL
    checkpoint: str | None = None
    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    device: str = "cpu"
    batch_size: int = 8
    seed: int = 0  # cross-reenact pairing
    length_policy: str = "error"  # folder outputs of the wrong length: error | trim
    n_boot: int = 1000
    quiet: bool = False


@dataclass
class BenchResult:
    out: Path
    rows: list[dict]
    summary: dict
    n_jobs: int
    n_cached: int


# ---------------------------------------------------------------------------------------------------------------
# evaluator and protocol


def make_evaluator(protocol_id: str, metrics, device: str):
    # imported here: torch and the metric networks are not needed to list methods or to refuse a bad input
    from ..metrics.evaluate import Evaluator

    return Evaluator(protocol_id=protocol_id, metrics=list(metrics), device=device)


def load_protocol(protocol_id: str):
    from ..manifests.protocols import get_protocol

    return get_protocol(protocol_id)


def _row(row: dict) -> dict:
    keys = ("metric", "value", "null_reason", "n", "flags", "weights", "extra")
    out = {k: row.get(k) for k in keys}
    if out["value"] is not None:
        out["value"] = float(out["value"])
    if out["n"] is not None:
        out["n"] = int(out["n"])
    return out


def _merge_extra(extra: str | None, more: dict) -> str | None:
    merged = json.loads(extra) if extra else {}
    merged.update(more)
    return dumps_extra(merged)


def _merge_flags(flags: str | None, more: list[str]) -> str | None:
    items = [f for f in (flags or "").split(",") if f] + [f for f in more if f]
    return ",".join(dict.fromkeys(items)) or None


# ---------------------------------------------------------------------------------------------------------------
# lossless frame cache (input of the set-level reduction)


def write_lossless(path: Path, frames: np.ndarray, fps: float) -> None:
    from ..manifests.io import atomic_write_bytes
    from ..media import ffmpeg_bin

    t, h, w = frames.shape[:3]
    cmd = [ffmpeg_bin(), "-v", "error", "-nostdin", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", f"{fps}", "-i", "-", "-c:v", "ffv1", "-level", "3", "-pix_fmt", "bgr0", "-threads", "1",
           "-f", "matroska", "-fflags", "+bitexact", "-"]
    proc = subprocess.run(cmd, input=np.ascontiguousarray(frames, np.uint8).tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise MediaError(f"{path}: lossless encode failed: {proc.stderr.decode(errors='replace')[-300:]}")
    atomic_write_bytes(path, proc.stdout)


# ---------------------------------------------------------------------------------------------------------------
# steps


def _clip_done(out: Path, clip_id: str, run_hash: str) -> bool:
    path = out / "clips" / f"{clip_id}.json"
    try:
        return json.loads(path.read_text()).get("run") == run_hash
    except (OSError, json.JSONDecodeError):
        return False


class ScoreClips(Step):
    """Generate and score one job at a time; each clip's rows are persisted so a rerun skips finished clips."""

    def __init__(self, cfg: BenchConfig, method: Method, task: Task, run_hash: str):
        self.cfg, self.method, self.task, self.run_hash = cfg, method, task, run_hash
        self.out = Path(cfg.out)

    def _evaluator(self):
        if getattr(self, "_lazy_evaluator", None) is None:
            set_level = self.task.set_metrics()
            metrics = [m for m in self.task.evaluator_metrics() if self.task.result_name(m) not in set_level]
            self._lazy_evaluator = make_evaluator(self.cfg.protocol, metrics, self.cfg.device)
        return self._lazy_evaluator

    def run(self, rows, rank=0, world_size=1):
        for job in rows:
            path = self.out / "clips" / f"{job['clip_id']}.json"
            if _clip_done(self.out, job["clip_id"], self.run_hash):  # a damaged or stale file is recomputed
                if self.ctx:
                    self.ctx.count("cached")
                yield {"clip_id": job["clip_id"], "cached": True}
                continue
            record = self.score(job)
            atomic_write_text(path, json.dumps(record, sort_keys=True, indent=1))
            if self.ctx:
                self.ctx.count("scored" if record["ok"] else "failed")
            yield {"clip_id": job["clip_id"], "cached": False}

    def score(self, job: dict) -> dict:
        from ..media import read_audio, read_frames

        evaluator = self._evaluator()
        protocol = load_protocol(self.cfg.protocol)
        timing: dict[str, float] = {}
        t0 = time.perf_counter()
        base_extra = {}
        if job["source_clip_id"] != job["clip_id"]:
            base_extra["source_clip_id"] = job["source_clip_id"]
        try:
            try:
                driver = read_frames(job["clip_path"], fps=protocol.fps, size=protocol.size)
                if job["source_clip_id"] == job["clip_id"]:
                    source = driver[0]
                else:
                    source = read_frames(job["source_path"], fps=protocol.fps, size=protocol.size, duration=0.5)[0]
                audio = read_audio(job["clip_path"], protocol.audio_rate) if job.get("has_audio") else None
            except MediaError as exc:
                raise OutputError("clip_unreadable", f"the manifest's clip cannot be decoded: {exc}") from exc
            timing["decode"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            gen = self.method.generate(Inputs(job, source, driver, audio, protocol.fps, protocol.size))
            expected = gen.reference_frames or len(driver)
            shape = (expected, protocol.size, protocol.size, 3)
            if gen.frames.shape != shape or gen.frames.dtype != np.uint8:
                raise OutputError("bad_output_shape", f"expected {shape} uint8, got {gen.frames.shape} "
                                                      f"{gen.frames.dtype}")
        except OutputError as exc:
            timing["generate"] = time.perf_counter() - t0
            rows = [{"metric": m, "value": None, "null_reason": exc.reason, "n": None, "flags": None,
                     "weights": None, "extra": dumps_extra({**base_extra, "error": exc.message})}
                    for m in self.task.per_clip_metrics()]
            return {"run": self.run_hash, "clip_id": job["clip_id"], "ok": False, "reason": exc.reason,
                    "rows": rows, "timing": timing, "missing_weights": {}, "protocol_standard": None}
        timing["generate"] = time.perf_counter() - t0
        frames = gen.frames
        reference = driver[: len(frames)]
        # When the source portrait is frame 0 of the clip itself, that frame is an input, not an output: scoring it
        # would reward copying (a static baseline would get PSNR = inf on it). Metrics see frames 1..T-1.
        skip = 1 if job["source_clip_id"] == job["clip_id"] and len(frames) > 1 else 0
        if skip:
            base_extra["scored_frames"] = f"1..{len(frames) - 1}"
        if audio is not None:
            audio = audio[: int(round(len(frames) / protocol.fps * protocol.audio_rate))]

        t0 = time.perf_counter()
        from ..media import write_video

        write_video(self.out / "videos" / f"{job['clip_id']}.mp4", frames, protocol.fps, audio=audio,
                    audio_rate=protocol.audio_rate)
        if self.task.set_metrics():
            write_lossless(self.out / "cache" / f"{job['clip_id']}.mkv", frames, protocol.fps)
        timing["write"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        rows = []
        try:
            scored_audio = None if audio is None else audio[int(round(skip / protocol.fps * protocol.audio_rate)):]
            raw = evaluator.add_video(job["clip_id"], frames[skip:], gt=reference[skip:], source=source,
                                      audio=scored_audio)
        except TalkbenchError as exc:
            raw = [{"metric": m, "value": None, "null_reason": "metric_error", "extra": json.dumps({"error": str(exc)})}
                   for m in self.task.evaluator_metrics() if self.task.result_name(m) not in self.task.set_metrics()]
        if "akd_driver" in self.task.bench_metrics:
            from .motion import motion_agreement

            raw.append(motion_agreement(frames, reference))
        timing["metrics"] = time.perf_counter() - t0
        wanted = set(self.task.per_clip_metrics())
        for r in raw:
            row = _row(r)
            row["metric"] = self.task.result_name(row["metric"])
            if row["metric"] not in wanted:
                continue
            more = dict(base_extra, **gen.extra)
            if self.task.name == "audio-driven" and row["metric"].endswith("_vs_gt"):
                more["compared_with"] = "ground truth"
            row["extra"] = _merge_extra(row["extra"], {k: v for k, v in more.items() if v is not None})
            row["flags"] = _merge_flags(row["flags"], gen.flags)
            rows.append(row)
        return {"run": self.run_hash, "clip_id": job["clip_id"], "ok": True, "reason": None, "rows": rows,
                "timing": timing, "n_frames": int(len(frames)),
                "missing_weights": dict(evaluator.missing_weights() or {}),
                "protocol_id": evaluator.protocol_id,
                "protocol_standard": evaluator.protocol_standard}


class SetMetrics(Step):
    """The reduction: every cached generated video and its reference into one Evaluator, then ``finalize``."""

    def __init__(self, cfg: BenchConfig, task: Task):
        self.cfg, self.task = cfg, task
        self.out = Path(cfg.out)

    def run(self, rows, rank=0, world_size=1):
        from ..media import read_frames

        protocol = load_protocol(self.cfg.protocol)
        metrics = [self.task.renames.get(m, m) for m in self.task.set_metrics()]
        for row in rows:
            jobs = row["jobs"]
            if not jobs:
                for m in self.task.set_metrics():
                    yield {"metric": m, "value": None, "null_reason": "no_scored_clips", "n": 0}
                continue
            evaluator = make_evaluator(self.cfg.protocol, metrics, self.cfg.device)
            for job in jobs:
                pred = read_frames(self.out / "cache" / f"{job['clip_id']}.mkv")
                ref = read_frames(job["clip_path"], fps=protocol.fps, size=protocol.size)[: len(pred)]
                skip = job["skip"]  # the source frame is not scored (see ScoreClips.score)
                pred, ref = pred[skip:], ref[skip:]
                evaluator.add_video(job["clip_id"], pred, gt=ref, source=None, audio=None)
            for r in evaluator.finalize():
                out = _row(r)
                out["metric"] = self.task.result_name(out["metric"])
                yield out


# ---------------------------------------------------------------------------------------------------------------
# the run


def read_split(manifest: str, split: str) -> list[dict]:
    table = read_table(manifest, "clips")
    rows = [r for r in table.to_pylist() if r["split"] == split]
    if not rows:
        splits = sorted({str(s) for s in table.column("split").to_pylist()})
        raise ManifestError(f"{manifest}: split {split!r} is empty (splits present: {splits or 'none'})")
    return rows


def _check_out(out: Path, run_info: dict) -> None:
    """Refuse to mix two runs (another method, task, protocol, split or manifest) in one folder."""
    run_file = out / "run.json"
    if run_file.exists():
        try:
            previous = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError):
            previous = {}
        keys = ("method", "task", "protocol_id", "protocol_requested", "split", "manifest_sha256", "method_key",
                "seed")
        diff = [k for k in keys if previous.get(k) != run_info.get(k)]
        if diff:
            k = diff[0]
            raise ConfigError(f"{out} holds another run ({k} {previous.get(k)!r}, this run {run_info.get(k)!r}); "
                              f"use another --out")
    results = out / "results.parquet"
    if results.exists():
        table = read_table(results, "results")
        found = sorted(set(table.column("protocol_id").to_pylist()))
        if found and found != [run_info["protocol_id"]]:
            raise ConfigError(f"{results} holds results of protocol {', '.join(found)}; this run uses "
                              f"{run_info['protocol_id']}; use another --out")


def prepare(cfg: BenchConfig):
    """Validate everything that can fail before OUT is touched; returns (method, task, protocol, jobs, run_info)."""
    task = get_task(cfg.task)
    method = make_method(cfg.method, checkpoint=cfg.checkpoint, device=cfg.device, batch_size=cfg.batch_size,
                         length_policy=cfg.length_policy)
    method.check_task(task.name)
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"--limit must be ≥ 1, got {cfg.limit}")
    clips = read_split(cfg.manifest, cfg.split)
    protocol = load_protocol(cfg.protocol)
    jobs = make_jobs(task, clips, Path(cfg.manifest).resolve().parent, seed=cfg.seed, limit=cfg.limit)
    if task.needs_audio and not any(j["has_audio"] for j in jobs):
        raise ConfigError(f"task {task.name!r} needs audio, and no clip of split {cfg.split!r} has any")
    from ..media import sha256_file

    # The Evaluator names the protocol it really runs: a non-official weights file gives "<id>+nonstd.<digest>" over
    # every file the task's metrics use. Building it is cheap (networks load lazily), so ask once for the whole run.
    probe = make_evaluator(protocol.protocol_id, task.evaluator_metrics(), "cpu")
    run_info = {
        "method": method.name,
        "method_key": stable_hash(method.run_key()),
        "task": task.name,
        "protocol_id": probe.protocol_id,
        "protocol_standard": probe.protocol_standard,
        "protocol_requested": protocol.protocol_id,
        "missing_weights": dict(sorted((probe.missing_weights() or {}).items())),
        "protocol_digest": protocol.digest,
        "split": cfg.split,
        "manifest": str(Path(cfg.manifest).resolve()),
        "manifest_sha256": sha256_file(cfg.manifest),
        "seed": cfg.seed if task.name == "cross-reenact" else None,
        "length_policy": cfg.length_policy,
        "talkbench_version": __version__,
    }
    return method, task, protocol, jobs, run_info


def run_bench(cfg: BenchConfig) -> BenchResult:
    method, task, protocol, jobs, run_info = prepare(cfg)
    out = Path(cfg.out)
    _check_out(out, run_info)
    # One rank per worker: per-clip files give fine-grained resume, and each rank loads the metric networks once.
    executor = make_executor(cfg.executor, workers=cfg.workers, tasks=max(1, cfg.workers), quiet=cfg.quiet,
                             ray_address=cfg.ray_address)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "run.json", json.dumps(run_info, indent=1, sort_keys=True))
    run_hash = stable_hash({k: v for k, v in run_info.items() if k not in ("manifest",)})
    cfg_dict = asdict(cfg)

    n_cached = sum(1 for j in jobs if _clip_done(out, j["clip_id"], run_hash))
    executor.run([ScoreClips(cfg, method, task, run_hash)], jobs, out / "stats" / "clips",
                 config={"run": run_hash, "step": "clips", "config": cfg_dict}, description="clips")
    records = {j["clip_id"]: json.loads((out / "clips" / f"{j['clip_id']}.json").read_text()) for j in jobs}

    rows: list[dict] = []
    for job in jobs:
        for r in records[job["clip_id"]]["rows"]:
            rows.append({**r, "clip_id": job["clip_id"]})

    if task.set_metrics():
        ok_jobs = [{"clip_id": j["clip_id"], "clip_path": j["clip_path"],
                    "skip": int(j["source_clip_id"] == j["clip_id"] and records[j["clip_id"]].get("n_frames", 0) > 1)}
                   for j in jobs if records[j["clip_id"]]["ok"]]
        excluded = [j["clip_id"] for j in jobs if not records[j["clip_id"]]["ok"]]
        set_stage = executor.run([SetMetrics(cfg, task)], [{"jobs": ok_jobs}], out / "stats" / "set",
                                 config={"run": run_hash, "step": "set", "jobs": ok_jobs}, description="set metrics")
        for r in set_stage.rows:
            if excluded:
                r["extra"] = _merge_extra(r.get("extra"), {"excluded_clips": len(excluded)})
                r["flags"] = _merge_flags(r.get("flags"), ["clips_excluded"])
            rows.append({**r, "clip_id": None})

    common = {"protocol_id": run_info["protocol_id"], "protocol_standard": run_info["protocol_standard"],
              "method": method.name,
              "task": task.name, "split": cfg.split, "talkbench_version": __version__}
    rows = [{**common, **r} for r in rows]
    write_table(rows, out / "results.parquet", "results")
    summary = summarise(rows, run_info, run_info["missing_weights"], records, n_boot=cfg.n_boot)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, sort_keys=True))
    return BenchResult(out, rows, summary, len(jobs), n_cached)


def summarise(rows: list[dict], run_info: dict, missing: dict, records: dict, *, n_boot: int = 1000) -> dict:
    from ..leaderboards.metric_info import column_order, higher_is_better
    from ..leaderboards.stats import DEFAULT_SEED, bootstrap_ci, json_number

    by_metric: dict[str, list[dict]] = {}
    for r in rows:
        by_metric.setdefault(r["metric"], []).append(r)
    metrics = {}
    for name in column_order(by_metric):
        group = by_metric[name]
        values = [r["value"] for r in group if r["value"] is not None]
        reasons = Counter(r["null_reason"] or "unknown" for r in group if r["value"] is None)
        set_level = all(r["clip_id"] is None for r in group)
        if set_level:
            value = values[0] if values else None
            entry = {"level": "set", "value": json_number(value), "n": group[0]["n"], "mean": json_number(value),
                     "ci_low": None, "ci_high": None}
        else:
            est = bootstrap_ci(values, n_boot=n_boot, seed=DEFAULT_SEED)
            entry = {"level": "clip", "mean": json_number(est.mean), "ci_low": json_number(est.ci_low),
                     "ci_high": json_number(est.ci_high), "n": est.n}
        entry.update({"n_null": sum(reasons.values()), "null_reasons": dict(sorted(reasons.items())),
                      "higher_is_better": higher_is_better(name)})
        metrics[name] = entry
    failed = {cid: rec["reason"] for cid, rec in sorted(records.items()) if not rec["ok"]}
    return {
        "run": {k: run_info[k] for k in ("method", "task", "protocol_id", "split", "talkbench_version", "seed")},
        "protocol_standard": bool(rows[0]["protocol_standard"]) if rows else None,
        "n_clips": len(records),
        "n_scored": len(records) - len(failed),
        "failed_clips": failed,
        "ci": {"method": "percentile bootstrap over clips", "level": 0.95, "n_boot": n_boot, "seed": DEFAULT_SEED},
        "metrics": metrics,
        "missing_weights": dict(sorted(missing.items())),
    }
