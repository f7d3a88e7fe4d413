"""`bench run`: generate every job's video with a method, score it under a protocol, write results and a summary.

Layout of OUT:

    run.json              what this folder holds (method, task, protocol, split, manifest); another run is refused
    videos/<clip_id>.mp4  the generated video with the clip's audio muxed, to watch
    cache/<clip_id>.mkv   the generated frames, lossless (FFV1), the input of the set-level metrics
    stats/clips/, stats/set/  executor logging dirs: per-rank stats, outputs and completion markers (resume)
    results.parquet       one row per clip × metric, plus the set-level rows (clip_id null)
    summary.json          mean and 95 % bootstrap CI per metric, null reasons, missing-weights install hints

Resume is the executor's: one rank per clip, and a rerun skips the ranks with a completion marker, so a finished
run reruns as a no-op and a killed one redoes only its unfinished clips.

Set-level metrics (FID, FID-clean, FVD) need features of every clip. Per-clip steps run the per-clip metrics and
keep the generated frames losslessly under ``cache/``; one final step (a single rank on the same executor, so it gets
the GPU under Ray) decodes every cached video with its reference clip into one Evaluator and calls ``finalize``.
Nothing set-level is computed twice, and the reduction reads exactly the frames the per-clip metrics saw.
"""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, make_dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ConfigError, ManifestError, MediaError, TalkbenchError
from ..manifests.io import atomic_write_text, read_table, write_table
from ..runtime import Step, make_executor, stable_hash
from .methods import LENGTH_POLICIES, METHOD_OPTIONS, Generated, Inputs, Method, OutputError, dumps_extra, make_method
from .tasks import Task, get_task, make_jobs

DEFAULT_PROTOCOL = "talkbench-v1-256"

_BENCH_FIELDS = [
    ("method", str), ("task", str), ("manifest", str), ("out", str),
    ("split", str, field(default="test")),
    ("limit", "int | None", field(default=None)),
    ("protocol", str, field(default=DEFAULT_PROTOCOL)),
    ("executor", str, field(default="local")),
    ("workers", int, field(default=1)),
    ("ray_address", "str | None", field(default=None)),
    ("device", str, field(default="cpu")),
    ("seed", int, field(default=0)),  # cross-reenact pairing
    ("n_boot", int, field(default=1000)),
    ("quiet", bool, field(default=False)),
    ("name", "str | None", field(default=None)),  # the leaderboard's row label (default: the method's name)
    ("metrics", "tuple | None", field(default=None)),  # score only these (result labels); the run is then partial
    ("instructions", "tuple | None", field(default=None)),  # task instruction: only these bundled instruction ids
]
# The method options (checkpoint, batch size, length policy...) are fields too, generated from their registry.
BenchConfig = make_dataclass("BenchConfig", _BENCH_FIELDS + [
    (name, object, field(default=opt.default)) for name, opt in METHOD_OPTIONS.items()])
BenchConfig.__module__ = __name__
BenchConfig.__doc__ = "Everything `bench run` needs; the method options' fields come from ``METHOD_OPTIONS``."


@dataclass
class BenchResult:
    out: Path
    rows: list[dict]
    summary: dict
    n_jobs: int
    n_cached: int
    stages: dict = field(default_factory=dict)  # stage -> wall seconds of this invocation
    clip_timing: dict = field(default_factory=dict)  # clip_id -> {decode, generate, write, metrics} seconds


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


_EVALUATORS: dict[tuple, object] = {}  # per process: (run hash, device) -> Evaluator


class ScoreClips(Step):
    """Generate and score one job at a time; the executor persists each rank's records and marks it complete."""

    def __init__(self, cfg, method: Method, task: Task, run_hash: str):
        self.cfg, self.method, self.task, self.run_hash = cfg, method, task, run_hash
        self.out = Path(cfg.out)

    def _evaluator(self):
        # One rank per clip: the Evaluator (and its networks) is kept per process, not per rank, so a worker that
        # scores many clips loads the metric networks once.
        # The run hash covers the protocol id, the task and the weights found (missing or non-official files).
        key = (self.run_hash, self.cfg.device)
        if key not in _EVALUATORS:
            _EVALUATORS.clear()  # one run at a time: do not keep another run's networks alive
            _EVALUATORS[key] = make_evaluator(self.cfg.protocol, self.task.per_clip_metrics(), self.cfg.device)
        return _EVALUATORS[key]

    def run(self, rows, rank=0, world_size=1):
        import uuid

        for job in rows:
            record = self.score(job)
            record.update(attempt=uuid.uuid4().hex, retry_after=job.get("retry_after"),
                          output_sha256=job.get("output_sha256"))
            atomic_write_text(self.out / "clips" / f"{job['clip_id']}.json", json.dumps(record, sort_keys=True,
                                                                                         indent=1))
            if self.ctx:
                self.ctx.count("scored" if record["ok"] else "failed")
                self.ctx.note = _note(record)  # shown by the progress bar
            yield record

    def score(self, job: dict) -> dict:
        """Decode the inputs, generate, write the videos, score: one record per clip (null rows on a bad output)."""
        protocol = load_protocol(self.cfg.protocol)
        base_extra = {"source_clip_id": job["source_clip_id"]} if job["source_clip_id"] != job["clip_id"] else {}
        timing: dict[str, float] = {}
        t0 = time.perf_counter()
        try:
            inputs = self._inputs(job, protocol)
            timing["decode"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            gen = self._generate(inputs)
        except OutputError as exc:
            timing["generate"] = time.perf_counter() - t0
            return self._failed(job, exc, base_extra, timing)
        timing["generate"] = time.perf_counter() - t0
        frames, audio = gen.frames, inputs.audio
        if audio is not None:
            audio = audio[: int(round(len(frames) / protocol.fps * protocol.audio_rate))]
        # The encoders (ffmpeg processes) run while the metrics are computed: "write" is the time the clip waited for
        # them after its metrics, "encode" their own wall time.
        # A thread per clip, never a pool kept across clips: executor workers fork, and a forked pool has no thread.
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tb-encode")
        writing = writer.submit(self._timed_write, job["clip_id"], frames, audio, protocol)
        t0 = time.perf_counter()
        skip = self.task.scored_frames(job, len(frames))
        if skip:
            base_extra["scored_frames"] = f"1..{len(frames) - 1}"
        raw = self._evaluate(job, frames, inputs.driver[: len(frames)], inputs.source, audio, skip, protocol)
        timing["metrics"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            timing["encode"] = writing.result()  # an encode failure is raised here, before the clip's record
        finally:
            writer.shutdown()
        timing["write"] = time.perf_counter() - t0
        evaluator = self._evaluator()
        return {"run": self.run_hash, "clip_id": job["clip_id"], "ok": True, "reason": None,
                "rows": self._label(raw, base_extra, gen), "timing": timing, "n_frames": int(len(frames)),
                "missing_weights": dict(evaluator.missing_weights() or {}), "protocol_id": evaluator.protocol_id,
                "protocol_standard": evaluator.protocol_standard}

    def _inputs(self, job: dict, protocol) -> Inputs:
        from ..manifests.frames import read_video
        from ..media import read_audio

        try:
            driver = read_video(job["clip_path"], protocol).frames
            same = job["source_clip_id"] == job["clip_id"]
            source = driver[0] if same else read_video(job["source_path"], protocol, duration=0.5).frames[0]
            audio = read_audio(job["clip_path"], protocol.audio_rate) if job.get("has_audio") else None
        except MediaError as exc:
            raise OutputError("clip_unreadable", f"the manifest's clip cannot be decoded: {exc}") from exc
        return Inputs(job, source, driver, audio, protocol.fps, protocol.size, protocol)

    def _generate(self, inputs: Inputs) -> Generated:
        gen = self.method.generate(inputs)
        shape = (gen.reference_frames or len(inputs.driver), inputs.size, inputs.size, 3)
        if gen.frames.shape != shape or gen.frames.dtype != np.uint8:
            raise OutputError("bad_output_shape", f"expected {shape} uint8, got {gen.frames.shape} {gen.frames.dtype}")
        return gen

    def _timed_write(self, clip_id: str, frames: np.ndarray, audio, protocol) -> float:
        t0 = time.perf_counter()
        self._write(clip_id, frames, audio, protocol)
        return time.perf_counter() - t0

    def _write(self, clip_id: str, frames: np.ndarray, audio, protocol) -> None:
        from ..media import write_video

        write_video(self.out / "videos" / f"{clip_id}.mp4", frames, protocol.fps, audio=audio,
                    audio_rate=protocol.audio_rate)
        if self.task.set_metrics():
            write_lossless(self.out / "cache" / f"{clip_id}.mkv", frames, protocol.fps)

    def _evaluate(self, job, frames, reference, source, audio, skip: int, protocol) -> list[dict]:
        try:
            scored_audio = None if audio is None else audio[int(round(skip / protocol.fps * protocol.audio_rate)):]
            return self._evaluator().add_video(job["clip_id"], frames[skip:], gt=reference[skip:], source=source,
                                               audio=scored_audio)
        except TalkbenchError as exc:
            return [{"metric": m, "value": None, "null_reason": "metric_error", "extra": json.dumps({"error": str(exc)})}
                    for m in self.task.per_clip_metrics()]

    def _label(self, raw: list[dict], base_extra: dict, gen: Generated) -> list[dict]:
        """Evaluator rows under the task's labels, with what the run and the method add to ``extra``/``flags``."""
        rows = []
        for r in raw:
            row = _row(r)
            more = {**base_extra, **gen.extra, **self.task.row_extra(row["metric"])}
            row["metric"] = self.task.result_name(row["metric"])
            row["extra"] = _merge_extra(row["extra"], {k: v for k, v in more.items() if v is not None})
            row["flags"] = _merge_flags(row["flags"], gen.flags)
            rows.append(row)
        return rows

    def _failed(self, job: dict, exc: OutputError, base_extra: dict, timing: dict) -> dict:
        rows = [{"metric": self.task.result_name(m), "value": None, "null_reason": exc.reason, "n": None,
                 "flags": None, "weights": None, "extra": dumps_extra({**base_extra, "error": exc.message})}
                for m in self.task.per_clip_metrics()]
        return {"run": self.run_hash, "clip_id": job["clip_id"], "ok": False, "reason": exc.reason, "rows": rows,
                "timing": timing, "missing_weights": {}, "protocol_standard": None}


def _note(record: dict) -> str | None:
    """The first scored value of a clip record, for the progress bar ("psnr 27.31")."""
    for row in record["rows"]:
        if row.get("value") is not None:
            return f"{row['metric']} {row['value']:.4g}"
    return record.get("reason")


def use_reference_cache(evaluator, cfg, jobs: list[dict]) -> None:
    """Key the set-level metrics' ground-truth statistics by manifest sha, split, clip set and protocol digest."""
    from ..media import sha256_file
    from ..metrics.stats_cache import ReferenceStatsCache, reference_clip_set

    clip_set = reference_clip_set((j["clip_id"], j["skip"], j["n_frames"]) for j in jobs)
    evaluator.use_reference_stats(ReferenceStatsCache(), sha256_file(cfg.manifest), cfg.split, clip_set)


class SetMetrics(Step):
    """The reduction: every cached generated video and its reference into one Evaluator, then ``finalize``."""

    def __init__(self, cfg, task: Task):
        self.cfg, self.task = cfg, task
        self.out = Path(cfg.out)

    def run(self, rows, rank=0, world_size=1):
        from ..manifests.frames import read_video
        from ..media import read_frames

        protocol = load_protocol(self.cfg.protocol)
        for row in rows:
            jobs = row["jobs"]
            if not jobs:
                for m in self.task.set_metrics():
                    yield {"metric": self.task.result_name(m), "value": None, "null_reason": "no_scored_clips", "n": 0}
                continue
            evaluator = make_evaluator(self.cfg.protocol, self.task.set_metrics(), self.cfg.device)
            use_reference_cache(evaluator, self.cfg, jobs)  # ground-truth FID/FVD statistics shared across methods
            # Nothing to accumulate when every set metric lacks its weights: finalize gives their null rows anyway.
            computable = set(self.task.set_metrics()) - set(evaluator.missing_weights())
            for job in jobs if computable else []:
                pred = read_frames(self.out / "cache" / f"{job['clip_id']}.mkv")  # written at the protocol size
                ref = read_video(job["clip_path"], protocol).frames[: len(pred)]
                skip = job["skip"]  # the source frame is not scored (Task.scored_frames)
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
                "seed", "metrics")
        diff = [k for k in keys if previous.get(k) != run_info.get(k)]
        if diff == ["method_key"] and isinstance(previous.get("method_run_key"), dict):
            # The same method with another model or folder (e.g. `ours` with a retrained checkpoint): name what
            # changed. Refused rather than rescored: OUT's videos and results describe the old model, and mixing or
            # silently replacing them would give one folder two models' numbers.
            old, new = previous["method_run_key"], run_info["method_run_key"]
            what = "; ".join(f"{k} {old.get(k)!r} → {new.get(k)!r}" for k in sorted(set(old) | set(new))
                             if old.get(k) != new.get(k))
            raise ConfigError(f"{out} holds a run of {run_info['method']} with another input ({what}); "
                              f"use another --out, or delete {out} to rescore")
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


def check_options(cfg) -> None:
    """Every option value that can be wrong, refused with one line before any clip is generated or OUT touched."""
    from ..runtime.executors import EXECUTORS

    def at_least(name: str, value, low: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer ≥ {low}, got {value!r}")

    if cfg.limit is not None:
        at_least("--limit", cfg.limit, 1)
    at_least("--bootstrap", cfg.n_boot, 1)
    at_least("--workers", cfg.workers, 1)
    at_least("--seed", cfg.seed, 0)
    at_least("--batch-size", cfg.batch_size, 1)
    if cfg.executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {cfg.executor!r}; choose from {sorted(EXECUTORS)}")
    if cfg.length_policy not in LENGTH_POLICIES:
        raise ConfigError(f"unknown length policy {cfg.length_policy!r}; choose from {sorted(LENGTH_POLICIES)}")
    check_device(cfg.device)


def check_device(device: str) -> None:
    """A torch device name that this machine has (``cuda`` without a GPU is refused, not silently run on the CPU)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:N): {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device!r} was requested but torch sees no CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {device!r}: choose cpu, cuda or cuda:N")


def prepare(cfg):
    """Validate everything that can fail before OUT is touched; returns (method, task, protocol, jobs, run_info)."""
    task = select_metrics(get_task(cfg.task), cfg.metrics)
    check_options(cfg)
    method = make_method(cfg.method, device=cfg.device, **{k: getattr(cfg, k) for k in METHOD_OPTIONS})
    method.check_task(task.name)
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
        "method_run_key": method.run_key(),
        "clip_set": clip_set(jobs),
        "task": task.name,
        "protocol_id": probe.protocol_id,
        "protocol_standard": probe.protocol_standard,
        "protocol_requested": protocol.protocol_id,
        "missing_weights": dict(sorted((probe.missing_weights() or {}).items())),
        "protocol_digest": probe.protocol.digest,
        "split": cfg.split,
        "manifest": str(Path(cfg.manifest).resolve()),
        "manifest_sha256": sha256_file(cfg.manifest),
        "seed": cfg.seed if task.name == "cross-reenact" else None,
        "length_policy": cfg.length_policy,
        "talkbench_version": __version__,
        "name": cfg.name or method.name,
        "metrics": sorted(cfg.metrics) if cfg.metrics else None,
        "partial": bool(cfg.metrics),
    }
    return method, task, protocol, jobs, run_info


def select_metrics(task: Task, metrics) -> Task:
    """``--metrics a,b``: the task restricted to these result labels (a partial run); unknown names are refused."""
    if not metrics:
        return task
    from dataclasses import replace

    unknown = sorted(set(metrics) - set(task.metrics))
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r} for task {task.name!r}; choose from {sorted(task.metrics)}")
    return replace(task, only=tuple(m for m in task.evaluator_metrics() if task.result_name(m) in set(metrics)))


def clip_set(jobs: list[dict]) -> str:
    """sha256 of the sorted clip ids a run scores (and, cross-reenact, of each driver's source): equal sets compare."""
    return stable_hash(sorted([j["clip_id"], j["source_clip_id"]] for j in jobs))


# Options that change no score: a rerun with another value resumes instead of rescoring.
_NOT_SCORED = ("out", "quiet", "workers", "executor", "ray_address", "n_boot", "limit", "name")


def _previous_record(out: Path, clip_id: str) -> dict | None:
    try:
        record = json.loads((out / "clips" / f"{clip_id}.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def resume_jobs(jobs: list[dict], method: Method, out: Path) -> list[dict]:
    """Jobs with what decides whether a clip is rescored: its output's content hash (``folder:``), and after a
    failed attempt that attempt's id, so a failed clip is retried on every rerun and a scored one is kept.

    The executor reruns exactly the ranks (one per clip) whose job row changed."""
    keyed = []
    for job in jobs:
        job = {**job, "output_sha256": method.clip_key(job)}
        previous = _previous_record(out, job["clip_id"])
        if previous is None:
            job["retry_after"] = None
        elif previous.get("ok"):
            job["retry_after"] = previous.get("retry_after")  # the row the successful attempt ran with
        else:
            job["retry_after"] = previous.get("attempt")  # new after every failed attempt: the rank reruns
        keyed.append(job)
    return keyed


def run_bench(cfg) -> BenchResult:
    task = get_task(cfg.task)
    if task.runner:  # a task with jobs of its own (instruction: clip × instruction + a neutral video)
        return task.resolve_runner()(cfg)
    method, task, protocol, jobs, run_info = prepare(cfg)
    out = Path(cfg.out)
    _check_out(out, run_info)
    # One rank per clip: the executor's completion markers are the resume (a rerun redoes only unfinished clips).
    executor = make_executor(cfg.executor, workers=cfg.workers, quiet=cfg.quiet, ray_address=cfg.ray_address)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "run.json", json.dumps(run_info, indent=1, sort_keys=True))
    run_hash = stable_hash({k: v for k, v in run_info.items() if k not in ("manifest", "name", "clip_set")})
    scored_cfg = {k: v for k, v in asdict(cfg).items() if k not in _NOT_SCORED}
    stage_t0 = time.perf_counter()
    clips = executor.run([ScoreClips(cfg, method, task, run_hash)], resume_jobs(jobs, method, out),
                         out / "stats" / "clips", config={"run": run_hash, "step": "clips", "config": scored_cfg},
                         description="clips")
    stages = {"clips": time.perf_counter() - stage_t0}
    records = {r["clip_id"]: r for r in clips.rows}
    rows = [{**r, "clip_id": cid} for cid in sorted(records) for r in records[cid]["rows"]]
    if task.set_metrics():
        stage_t0 = time.perf_counter()
        rows += _set_rows(cfg, task, jobs, records, executor, out, run_hash)
        stages["set metrics"] = time.perf_counter() - stage_t0
    common = {"protocol_id": run_info["protocol_id"], "protocol_digest": run_info["protocol_digest"],
              "protocol_standard": run_info["protocol_standard"], "method": run_info["name"], "task": task.name,
              "split": cfg.split, "manifest_sha256": run_info["manifest_sha256"], "clip_set": run_info["clip_set"],
              "talkbench_version": __version__}
    rows = [{**common, **r} for r in rows]
    (out / "summary.json").unlink(missing_ok=True)  # a summary always describes the results.parquet beside it
    write_table(rows, out / "results.parquet", "results")
    summary = summarise(rows, run_info, run_info["missing_weights"], records, n_boot=cfg.n_boot)
    summary["partial"] = run_info["partial"]  # a metric subset: publish never ranks it against full runs
    write_summary(out, summary)
    return BenchResult(out, rows, summary, len(jobs), clips.skipped_ranks, stages,
                       {cid: r.get("timing", {}) for cid, r in records.items()})


def write_summary(out: Path, summary: dict) -> None:
    """summary.json, stamped with the sha256 of the results.parquet beside it: publish refuses a stale summary."""
    from ..media import sha256_file

    summary["results_sha256"] = sha256_file(out / "results.parquet")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, sort_keys=True))


def _set_rows(cfg, task: Task, jobs: list[dict], records: dict, executor, out: Path, run_hash: str) -> list[dict]:
    """The set-level reduction over the clips that were scored (a failed clip is excluded, and the rows say so)."""
    # ``attempt`` changes whenever a clip is rescored, so a rescored clip (a changed output) redoes the reduction;
    # ``n_frames`` keys the cached reference statistics.
    ok_jobs = [{"clip_id": j["clip_id"], "clip_path": j["clip_path"], "attempt": records[j["clip_id"]].get("attempt"),
                "skip": task.scored_frames(j, n), "n_frames": n} for j in jobs if records[j["clip_id"]]["ok"]
               for n in [records[j["clip_id"]].get("n_frames", 0)]]
    excluded = [j["clip_id"] for j in jobs if not records[j["clip_id"]]["ok"]]
    stage = executor.run([SetMetrics(cfg, task)], [{"jobs": ok_jobs}], out / "stats" / "set",
                         config={"run": run_hash, "step": "set", "jobs": ok_jobs}, description="set metrics")
    rows = []
    for r in stage.rows:
        if excluded:
            r["extra"] = _merge_extra(r.get("extra"), {"excluded_clips": len(excluded)})
            r["flags"] = _merge_flags(r.get("flags"), ["clips_excluded"])
        rows.append({**r, "clip_id": None})
    return rows


def summarise(rows: list[dict], run_info: dict, missing: dict, records: dict, *, n_boot: int = 1000) -> dict:
    from ..results.summary import run_summary

    return run_summary(rows, run_info, missing, records, n_boot=n_boot)
