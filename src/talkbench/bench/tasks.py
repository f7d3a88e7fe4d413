"""Benchmark tasks: what a method is given, what it is compared with, and which metrics score it.

A task turns the clips of a split into *jobs*, one per scored video. Every job is keyed by a ``clip_id`` (the clip
whose frames the generated video is compared with or driven by), so result rows, generated videos and external
method folders all use the same name.

Cross-reenactment pairing rule (deterministic): each test clip drives once. Its source is the first frame of a clip
of *another* identity, chosen by a generator seeded with ``(seed, sha256(driver clip_id))``. A driver's source
therefore depends only on the seed, the driver and the set of candidate clips, so ``--limit`` takes a prefix of the
full pairing and a resumed run pairs the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..metrics.spec import METRICS


@dataclass(frozen=True)
class Task:
    """What a method is given, which frames are scored against what, and under which labels.

    The metrics come from the registry: every ``MetricSpec`` that lists this task in ``tasks``, under its result
    label (``renames``: ``psnr`` is scored as ``psnr_vs_gt`` where the ground truth is not the target).
    """

    name: str
    description: str
    pairing: str = "self"  # self: the clip drives itself | cross: a source of another identity (``cross_pairs``)
    needs_audio: bool = False
    has_ground_truth: bool = True  # the generated video has a frame-aligned ground truth
    experimental: bool = False
    renames: dict[str, str] = field(default_factory=dict)  # registry metric -> result label
    compared_with: str | None = None  # recorded in ``extra`` of the renamed rows
    only: tuple[str, ...] | None = None  # `bench run --metrics`: a subset of the registry's metrics (a partial run)
    # A task with jobs of its own (not one generated video per clip) names its runner, "module:function" taking the
    # BenchConfig; resolved when the task runs, like MetricSpec.compute.
    runner: str | None = None

    def resolve_runner(self):
        import importlib

        module, _, name = self.runner.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Result labels of the scored metrics, in registry order."""
        return tuple(self.renames.get(m, m) for m in self.evaluator_metrics())

    def evaluator_metrics(self) -> tuple[str, ...]:
        return tuple(m for m, spec in METRICS.items()
                     if self.name in spec.tasks and (self.only is None or m in self.only))

    def per_clip_metrics(self) -> tuple[str, ...]:
        """Registry names of the metrics scored per clip."""
        return tuple(m for m in self.evaluator_metrics() if METRICS[m].level == "clip")

    def set_metrics(self) -> tuple[str, ...]:
        """Registry names of the metrics scored over the whole set (FID, FVD)."""
        return tuple(m for m in self.evaluator_metrics() if METRICS[m].level == "set")

    def result_name(self, metric: str) -> str:
        return self.renames.get(metric, metric)

    def row_extra(self, metric: str) -> dict:
        """What a result row of ``metric`` says beside its value, from the task's point of view."""
        return {"compared_with": self.compared_with} if self.compared_with and metric in self.renames else {}

    def scored_frames(self, job: dict, n_frames: int) -> int:
        """How many leading frames are not scored. When the source portrait is frame 0 of the clip itself, that
        frame is an input, not an output: scoring it would reward copying (a static baseline would get PSNR = inf
        on it), so the metrics see frames 1..T-1."""
        return 1 if job["source_clip_id"] == job["clip_id"] and n_frames > 1 else 0


TASKS: dict[str, Task] = {
    "self-reenact": Task(
        "self-reenact",
        "drive the first frame of a test clip with the clip itself; compare frames 1..T-1 with the clip",
    ),
    "cross-reenact": Task(
        "cross-reenact",
        "source = first frame of clip A, driver = clip B of another identity (seeded pairing); no ground truth. "
        "CSIM is against the source; akd_driver is the keypoint distance to the driver after per-video normalisation "
        "(displacements from the first frame / inter-ocular distance)",
        pairing="cross",
        has_ground_truth=False,
    ),
    "audio-driven": Task(
        "audio-driven",
        "first frame + the clip's audio (frame 0, the input, is not scored); *_vs_gt metrics compare with the "
        "ground-truth clip, which a speech-driven method is not expected to reproduce",
        needs_audio=True,
        renames={"psnr": "psnr_vs_gt", "ssim": "ssim_vs_gt", "lpips": "lpips_vs_gt"},
        compared_with="ground truth",
    ),
    "instruction": Task(
        "instruction",
        "every bundled instruction (data/instructions.json) on each test clip's first frame + audio; adherence per "
        "control against the same audio with the empty instruction (bench/instruction.py, docs/director.md)",
        pairing="instruction",
        needs_audio=True,
        has_ground_truth=False,
        runner="talkbench.bench.instruction:run_instruction",
    ),
    "upper-body": Task(
        "upper-body",
        "self-reenactment of upper-body clips, plus hand keypoint confidence (HKC); experimental",
        experimental=True,
    ),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(TASKS)}")
    return TASKS[name]


def _pair_rng(seed: int, clip_id: str) -> np.random.Generator:
    digest = int(hashlib.sha256(clip_id.encode()).hexdigest()[:15], 16)
    return np.random.default_rng([int(seed), digest])


def cross_pairs(clips: list[dict], seed: int = 0) -> dict[str, str]:
    """driver clip_id -> source clip_id, the source always of another identity (see the module docstring)."""
    ordered = sorted(clips, key=lambda c: c["clip_id"])
    identities = {c["clip_id"]: c.get("identity_id") or c["clip_id"] for c in ordered}
    if len(set(identities.values())) < 2:
        raise ConfigError(f"cross-reenact needs clips of at least 2 identities in the split; found "
                          f"{len(set(identities.values()))}")
    pairs = {}
    for driver in ordered:
        others = [c["clip_id"] for c in ordered if identities[c["clip_id"]] != identities[driver["clip_id"]]]
        pairs[driver["clip_id"]] = others[int(_pair_rng(seed, driver["clip_id"]).integers(len(others)))]
    return pairs


def make_jobs(task: Task, clips: list[dict], manifest_dir: Path, *, seed: int = 0,
              limit: int | None = None) -> list[dict]:
    """One job per scored video, sorted by clip_id; ``limit`` keeps the first N (pairing is computed before it)."""
    ordered = sorted(clips, key=lambda c: c["clip_id"])
    by_id = {c["clip_id"]: c for c in ordered}
    pairs = cross_pairs(ordered, seed) if task.pairing == "cross" else {}
    jobs = []
    for clip in ordered[: limit if limit else None]:
        cid = clip["clip_id"]
        source = by_id[pairs.get(cid, cid)]
        path = str((manifest_dir / clip["path"]).resolve())
        jobs.append({
            "clip_id": cid,
            "identity_id": clip.get("identity_id"),
            "clip_path": path,  # ground truth (self/audio/upper) or driver (cross)
            "source_clip_id": source["clip_id"],
            "source_path": str((manifest_dir / source["path"]).resolve()),
            "has_audio": bool(clip.get("has_audio")),
            "n_frames": clip.get("n_frames"),
            "fps": clip.get("fps"),
        })
    return jobs
