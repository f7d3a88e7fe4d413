"""Run folders you can find and compare: metadata written around every `bench run`, and `bench runs [DIR...]`.

``OUT/meta.json`` (``talkbench.runtime.meta``): when, command line, talkbench version, git commit, host, device,
wall time per stage and per clip, protocol digest, status. ``list_runs`` reads run folders (a folder holding
``run.json``, or any folder below one given, two levels deep) into one row each.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..runtime.meta import invocation, now, write_meta


def run_with_meta(cfg):
    """``run_bench`` with OUT/meta.json written at the end, also when the run fails after OUT was created."""
    from .run import run_bench

    record = {**invocation(cfg.device), "kind": "bench run", "name": cfg.name, "method": cfg.method,
              "task": cfg.task, "metrics": list(cfg.metrics) if cfg.metrics else None}
    t0 = time.perf_counter()
    try:
        result = run_bench(cfg)
    except BaseException as exc:
        if (Path(cfg.out) / "run.json").exists():  # the run had started: say how it ended
            write_meta(cfg.out, {**record, "finished": now(), "wall_s": round(time.perf_counter() - t0, 3),
                                 "status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]})
        raise
    summary = result.summary
    failed = len(result.clip_timing) - (summary.get("n_scored") or 0)
    status = "partial" if summary.get("partial") or cfg.limit else "complete"
    try:
        run = json.loads((Path(cfg.out) / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        run = {}
    write_meta(cfg.out, {
        **record, "finished": now(), "wall_s": round(time.perf_counter() - t0, 3), "status": status,
        "name": run.get("name") or cfg.method, "protocol_id": run.get("protocol_id"),
        "protocol_digest": run.get("protocol_digest"), "n_clips": summary.get("n_clips"),
        "n_scored": summary.get("n_scored"), "n_failed": max(0, failed), "n_cached": result.n_cached,
        "stages_s": {k: round(v, 3) for k, v in result.stages.items()},
        "clips_s": {cid: {k: round(v, 3) for k, v in t.items()} for cid, t in sorted(result.clip_timing.items())},
    })
    return result


def _run_folders(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        path = Path(path)
        if (path / "run.json").is_file() or (path / "meta.json").is_file():
            found.append(path)
            continue
        for depth in ("*", "*/*"):
            found.extend(sorted(p.parent for p in path.glob(f"{depth}/run.json")))
            found.extend(sorted(p.parent for p in path.glob(f"{depth}/meta.json")
                                if not (p.parent / "run.json").exists()))
    return list(dict.fromkeys(found))


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def run_row(folder: Path) -> dict:
    """One row of `bench runs`: name, method, task, protocol, clips, status, when, cost."""
    info, meta, summary = _read(folder / "run.json"), _read(folder / "meta.json"), _read(folder / "summary.json")
    kind = meta.get("kind") or ("bench run" if info else "train")
    status = meta.get("status")
    if status is None:  # a folder written before meta.json existed, or killed before its end
        status = ("partial" if summary.get("partial") else "complete") if summary else "failed"
    wall = sum(i.get("wall_s", 0) or 0 for i in meta.get("invocations", [])) or meta.get("wall_s")
    clips = None
    if summary:
        clips = f"{summary.get('n_scored')}/{summary.get('n_clips')}"
    return {"folder": str(folder), "kind": kind, "name": info.get("name") or meta.get("name") or info.get("method"),
            "method": info.get("method") or meta.get("method") or meta.get("family"),
            "task": info.get("task") or meta.get("task"), "protocol": info.get("protocol_id"),
            "clips": clips, "metrics": "subset: " + ",".join(info["metrics"]) if info.get("metrics") else "all",
            "status": status, "when": meta.get("started"), "wall_s": wall, "device": meta.get("device"),
            "git_commit": meta.get("git_commit")}


def list_runs(paths: list[str | Path]) -> list[dict]:
    """One row per run folder under ``paths``; ``run`` is the folder relative to the path it was found under."""
    rows = []
    for root in paths:
        for folder in _run_folders([Path(root)]):
            row = run_row(folder)
            rel = folder.relative_to(root).as_posix() if folder != Path(root) else Path(root).name
            rows.append({"run": rel, **row})
    return sorted(rows, key=lambda r: (r["when"] or "", r["folder"]), reverse=True)
