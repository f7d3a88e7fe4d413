"""Evaluator: every metric of a protocol over a stream of videos, as rows of the ``results`` schema.

Every metric's inputs, level, weights and compute entry come from the registry (``talkbench.metrics.spec.METRICS``);
the Evaluator only checks the inputs and weights, calls the entries and writes rows. Per-video metrics come back from
``add_video``; set-level metrics (FID, clean-FID, FVD) from ``finalize``.
A metric whose weights are missing, or whose input (ground truth, source image, audio) is absent, gives a row with
``value=None`` and the reason; the other metrics still run. Networks are built lazily, once, on first use.
"""

from __future__ import annotations

import json
import math
from typing import Callable, Sequence

import numpy as np

from ..errors import TalkbenchError
from ..manifests.protocols import get_protocol, nonstandard_protocol
from .. import weights
from .scores import Score, Video
from .spec import METRICS, computable

REASON_NO_INPUT = {"paired": "no ground truth given", "source": "no source image given", "audio": "no audio given"}


def _row(metric: str, value: float | None, n: int, *, reason: str | None = None, flags: Sequence[str] = (),
         used: dict | None = None, extra: dict | None = None) -> dict:
    if value is not None and isinstance(value, float) and math.isnan(value):
        value, reason = None, reason or "no valid frames (no face found)"
    return {"metric": metric, "value": None if value is None else float(value), "null_reason": reason, "n": int(n),
            "flags": ",".join(flags) or None, "weights": json.dumps(used or {}, sort_keys=True),
            "extra": json.dumps(extra or {}, sort_keys=True, default=float)}


class Evaluator:
    def __init__(self, protocol_id: str = "talkbench-v1-256", metrics: Sequence[str] | None = None,
                 device: str = "cpu", face_cropped: bool = False,
                 networks: dict[str, object] | None = None):
        """``networks`` injects ready-built models (tests, benchmarks), keyed by ``MetricSpec.network`` (lpips, fid,
        fid_clean, fvd, syncnet, arcface); an injected network counts as installed and is recorded with the hash
        ``"injected"``."""
        self.base = get_protocol(protocol_id)
        self.metrics = tuple(metrics or self.base.metrics or computable())
        unknown = [m for m in self.metrics if m not in computable()]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}; choose from {sorted(computable())}")
        self.specs = {m: METRICS[m] for m in self.metrics}
        self.device = device
        self.face_cropped = face_cropped
        self._nets: dict[str, object] = dict(networks or {})
        self._missing: dict[str, str] = {}
        self._used: dict[str, str] = {}  # entry -> sha256 of every file this run uses
        nonstandard: dict[str, str] = {}
        injected_entries = {e for spec in METRICS.values() if spec.network in self._nets
                            for e in spec.entries(self.base)}
        for metric, spec in self.specs.items():
            for entry in spec.entries(self.base):
                if entry in injected_entries:
                    self._used[entry] = "injected"
                elif not weights.is_installed(entry):
                    self._missing[metric] = weights.get_entry(entry).install_hint
                else:
                    record = weights.installed_record(entry)
                    self._used[entry] = record["sha256"]
                    if record.get("official") is False:
                        nonstandard[entry] = record["sha256"]
        self.protocol = nonstandard_protocol(self.base.protocol_id, nonstandard) if nonstandard else self.base
        self._sets: dict[str, object] = {}
        self.reference_stats = None  # (ReferenceStatsCache, {metric: StatsKey}), see use_reference_stats

    # ------------------------------------------------------------------ protocol, weights and networks

    @property
    def protocol_id(self) -> str:
        return self.protocol.protocol_id

    @property
    def protocol_standard(self) -> bool:
        return self.protocol is self.base and "injected" not in self._used.values()

    def to(self, device: str) -> "Evaluator":
        """Move every network built or injected so far and every set-level accumulator (states and extractor) to
        ``device``; networks built later are built there. Inputs are moved by the compute entries (``ev.device``)."""
        import torch

        self.device = device
        for key, net in self._nets.items():
            if isinstance(net, torch.nn.Module):
                self._nets[key] = net.to(device)
        for acc in self._sets.values():
            acc.to(device)
        return self

    def missing_weights(self) -> dict[str, str]:
        return dict(self._missing)

    def _weights_of(self, metric: str) -> dict:
        return {e: self._used.get(e, "") for e in METRICS[metric].entries(self.base)}

    def net(self, key: str, build: Callable[[], object]):
        """The shared network ``key`` (injected, or built once on first use)."""
        if key not in self._nets:
            self._nets[key] = build()
        return self._nets[key]

    def injected(self, key: str):
        return self._nets.get(key)

    def _stamp(self, rows: list[dict], clip_id: str | None) -> list[dict]:
        for row in rows:
            row.update(clip_id=clip_id, protocol_id=self.protocol_id, protocol_digest=self.protocol.digest,
                       protocol_standard=self.protocol_standard)
        return rows

    def _score_row(self, metric: str, score: Score, flags: Sequence[str]) -> dict:
        return _row(metric, score.value, score.n, reason=score.reason,
                    flags=(list(flags) if score.flags else []) + list(score.own_flags),
                    used=self._weights_of(metric), extra=score.extra)

    # ------------------------------------------------------------------ per video

    def add_video(self, clip_id: str, pred: np.ndarray, gt: np.ndarray | None = None, source: np.ndarray | None = None,
                  audio: np.ndarray | None = None) -> list[dict]:
        """pred/gt: (T, H, W, 3) uint8 RGB at the protocol fps/size; source: (H, W, 3) uint8; audio: float32 mono
        at the protocol audio rate. Returns one row per per-video metric; set-level metrics accumulate."""
        pred = np.ascontiguousarray(pred)
        if pred.ndim != 4 or pred.shape[-1] != 3 or pred.dtype != np.uint8:
            raise TalkbenchError(f"{clip_id}: pred must be (T, H, W, 3) uint8, found {pred.shape} {pred.dtype}")
        flags: list[str] = []
        pred_paired, gt_full = pred, gt
        if gt is not None:
            gt = np.ascontiguousarray(gt)
            gt_full = gt
            if gt.shape[1:] != pred.shape[1:]:
                raise TalkbenchError(f"{clip_id}: gt frames {gt.shape[1:]} differ from pred frames {pred.shape[1:]}")
            if len(gt) != len(pred):
                flags.append("length_mismatch")
                n = min(len(gt), len(pred))
                pred_paired, gt = pred[:n], gt[:n]
        video = Video(clip_id, pred, gt, pred_paired, source, audio)
        given = {"paired": gt, "source": source, "audio": audio}
        computed: dict[str, object] = {}  # compute entry -> Score, {name: Score} or the exception it raised
        rows: list[dict] = []
        for metric, spec in self.specs.items():
            if spec.level == "set":
                if metric not in self._missing:
                    self._accumulator(metric).add(pred, gt_full)  # every frame of both sides
                continue
            if metric in self._missing:
                rows.append(_row(metric, None, 0, reason=f"missing weights: {self._missing[metric]}",
                                 used=self._weights_of(metric)))
                continue
            if spec.inputs in given and given[spec.inputs] is None:
                rows.append(_row(metric, None, 0, reason=REASON_NO_INPUT[spec.inputs], used=self._weights_of(metric)))
                continue
            if spec.compute not in computed:
                try:
                    computed[spec.compute] = spec.resolve()(self, video)
                except Exception as exc:  # noqa: BLE001 - one failing metric must not stop the others; reason kept
                    computed[spec.compute] = exc
            result = computed[spec.compute]
            if isinstance(result, Exception):
                rows.append(_row(metric, None, 0, reason=f"{type(result).__name__}: {result}",
                                 used=self._weights_of(metric)))
                continue
            rows.append(self._score_row(metric, result[metric] if isinstance(result, dict) else result, flags))
        return self._stamp(rows, clip_id)

    # ------------------------------------------------------------------ set level

    def _accumulator(self, metric: str):
        if metric not in self._sets:
            self._sets[metric] = METRICS[metric].resolve()(self)
        return self._sets[metric]

    def use_reference_stats(self, cache, manifest_sha: str, split: str, clip_set: str) -> None:
        """Read the ground truth's FID/clean-FID/FVD statistics from ``cache`` (metrics/stats_cache.py) when present,
        and store them there after computing them; keyed with this Evaluator's protocol digest. Call before the
        first ``add_video``."""
        from .stats_cache import reference_keys

        if "injected" in self._used.values():
            raise TalkbenchError("injected networks have no digest: their reference statistics cannot be cached")
        if self._sets:
            raise TalkbenchError("use_reference_stats must be called before the first add_video")
        self.reference_stats = (cache, reference_keys(manifest_sha, split, clip_set, self.protocol.digest,
                                                      self.metrics))

    def finalize(self) -> list[dict]:
        rows = []
        for metric in (m for m, spec in self.specs.items() if spec.level == "set"):
            if metric in self._missing:
                rows.append(_row(metric, None, 0, reason=f"missing weights: {self._missing[metric]}",
                                 used=self._weights_of(metric)))
                continue
            rows.append(self._score_row(metric, self._accumulator(metric).result(), ()))
        return self._stamp(rows, None)
