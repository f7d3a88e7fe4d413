"""``torchmetrics.Metric`` classes for the per-video metrics whose functional cores live beside them
(Sync-C/D, CSIM, HKC, Diversity, AKD, AED): each ``update`` scores one video and the states are float64 sums of
per-video values and a count, so chunked updates equal one update and ranks merge by summing.
Videos where a metric cannot be computed (no face found, say) are counted in ``skipped``, not averaged in.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics import Metric

from .spec import METRICS


class _VideoMean(Metric):
    is_differentiable = False
    full_state_update = False
    names: tuple[str, ...] = ("value",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in self.names:
            self.add_state(f"{name}_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("videos", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("skipped", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _add(self, *values: float) -> None:
        if any(v is None or math.isnan(v) for v in values):
            self.skipped += 1
            return
        for name, v in zip(self.names, values):
            setattr(self, f"{name}_sum", getattr(self, f"{name}_sum") + v)
        self.videos += 1

    def compute(self):
        means = [getattr(self, f"{n}_sum") / self.videos for n in self.names]
        return means[0] if len(means) == 1 else dict(zip(self.names, means))


class SyncScores(_VideoMean):
    """Mean Sync-C (LSE-C), Sync-D (LSE-D) and AV offset over videos; ``compute`` returns a dict."""

    names = ("sync_c", "sync_d", "av_offset")
    higher_is_better = None  # one direction per name: METRICS["sync_c"], METRICS["sync_d"]

    def __init__(self, net, face_cropped: bool = False, vshift: int = 15, **kwargs):
        super().__init__(**kwargs)
        self.net, self.face_cropped, self.vshift = net, face_cropped, vshift

    def update(self, frames: np.ndarray, audio: np.ndarray) -> None:
        from .sync import sync_scores

        result, _ = sync_scores(self.net, frames, audio, face_cropped=self.face_cropped, vshift=self.vshift,
                                device=str(self.device))
        self._add(result.sync_c, result.sync_d, float(result.av_offset))


class CSIM(_VideoMean):
    higher_is_better = METRICS["csim"].higher_is_better

    def __init__(self, arcface, detector, **kwargs):
        super().__init__(**kwargs)
        self.arcface, self.detector = arcface, detector

    def update(self, source: np.ndarray, frames: np.ndarray) -> None:
        from .identity import csim, embed_frames

        src = embed_frames(source[None], self.arcface, self.detector).vectors[0]
        self._add(float("nan") if np.isnan(src[0]) else csim(src, embed_frames(frames, self.arcface, self.detector).vectors))


class AED(_VideoMean):
    higher_is_better = METRICS["aed"].higher_is_better

    def __init__(self, arcface, detector, **kwargs):
        super().__init__(**kwargs)
        self.arcface, self.detector = arcface, detector

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        from .identity import aed, embed_frames

        self._add(aed(embed_frames(pred, self.arcface, self.detector).vectors,
                      embed_frames(gt, self.arcface, self.detector).vectors))


class HKC(_VideoMean):
    higher_is_better = METRICS["hkc"].higher_is_better

    def __init__(self, detector: str = "mediapipe-hands", **kwargs):
        super().__init__(**kwargs)
        self.detector = detector

    def update(self, frames: np.ndarray) -> None:
        from .hands import hkc_frames

        self._add(float(hkc_frames(frames, self.detector).mean()))


class Diversity(_VideoMean):
    higher_is_better = METRICS["diversity"].higher_is_better

    def update(self, frames: np.ndarray) -> None:
        from ..faces.detect import mesh_landmarks
        from .motion import diversity

        self._add(diversity(mesh_landmarks(frames), frames.shape[2], frames.shape[1])[0])


class AKD(_VideoMean):
    higher_is_better = METRICS["akd"].higher_is_better

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        from ..faces.detect import mesh_landmarks
        from .motion import akd

        self._add(akd(mesh_landmarks(pred), mesh_landmarks(gt))[0])
