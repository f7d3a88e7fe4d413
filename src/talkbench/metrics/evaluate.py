"""Evaluator: every metric of a protocol over a stream of videos, as rows of the ``results`` schema.

Per-video metrics come back from ``add_video``; set-level metrics (FID, clean-FID, FVD) from ``finalize``.
A metric whose weights are missing, or whose input (ground truth, source image, audio) is absent, gives a row with
``value=None`` and the reason; the other metrics still run. Networks are built lazily, once, on first use.
"""

from __future__ import annotations

import json
import math
from typing import Callable, Sequence

import numpy as np
import torch

from .. import weights
from ..errors import TalkbenchError
from ..manifests.protocols import get_protocol, nonstandard_protocol

METRIC_NAMES = ("psnr", "ssim", "lpips", "fid", "fid_clean", "fvd", "sync_c", "sync_d", "av_offset", "csim", "hkc",
                "diversity", "akd", "aed")
HIGHER_IS_BETTER: dict[str, bool | None] = {
    "psnr": True, "ssim": True, "lpips": False, "fid": False, "fid_clean": False, "fvd": False, "sync_c": True,
    "sync_d": False, "av_offset": None, "csim": True, "hkc": True, "diversity": None, "akd": False, "aed": False,
}
SET_LEVEL = ("fid", "fid_clean", "fvd")
SYNC_METRICS = ("sync_c", "sync_d", "av_offset")
CHUNK = 32  # frames per network batch


def metric_weights(metric: str, hkc_detector: str = "mediapipe-hands") -> tuple[str, ...]:
    """The weights entries a metric needs under a protocol."""
    table = {"lpips": ("alexnet", "lpips-alex"), "fid": ("fid-inception",), "fid_clean": ("clean-fid-inception",),
             "fvd": ("i3d",), "csim": ("buffalo_l",), "aed": ("buffalo_l",),
             **{m: ("syncnet",) for m in SYNC_METRICS}}
    if metric == "hkc":
        return ("dwpose",) if hkc_detector == "dwpose" else ()
    return table.get(metric, ())


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
        """``networks`` injects ready-built models (tests, benchmarks): keys lpips, fid, fid_clean, fvd, syncnet,
        arcface; an injected network counts as installed and is recorded with the hash ``"injected"``."""
        self.base = get_protocol(protocol_id)
        self.metrics = tuple(metrics or self.base.metrics or METRIC_NAMES)
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}; choose from {sorted(METRIC_NAMES)}")
        self.device = device
        self.face_cropped = face_cropped
        self._nets: dict[str, object] = dict(networks or {})
        self._missing: dict[str, str] = {}
        self._used: dict[str, str] = {}  # entry -> sha256 of every file this run uses
        nonstandard: dict[str, str] = {}
        injected = {"lpips": ("alexnet", "lpips-alex"), "fid": ("fid-inception",), "fid_clean": ("clean-fid-inception",),
                    "fvd": ("i3d",), "syncnet": ("syncnet",), "arcface": ("buffalo_l",)}
        injected_entries = {e for key in self._nets for e in injected.get(key, ())}
        for metric in self.metrics:
            for entry in metric_weights(metric, self.base.hkc_detector):
                if entry in injected_entries:
                    self._used[entry] = "injected"
                elif not weights.is_installed(entry):
                    self._missing[metric] = weights.REGISTRY[entry].install_hint
                else:
                    record = weights.installed_record(entry)
                    self._used[entry] = record["sha256"]
                    if record.get("official") is False:
                        nonstandard[entry] = record["sha256"]
        self.protocol = nonstandard_protocol(self.base.protocol_id, nonstandard) if nonstandard else self.base
        self._sets: dict[str, object] = {}
        self._fvd_skipped = 0

    # ------------------------------------------------------------------ protocol and weights

    @property
    def protocol_id(self) -> str:
        return self.protocol.protocol_id

    @property
    def protocol_standard(self) -> bool:
        return self.protocol is self.base and "injected" not in self._used.values()

    def missing_weights(self) -> dict[str, str]:
        return dict(self._missing)

    def _weights_of(self, metric: str) -> dict:
        return {e: self._used.get(e, "") for e in metric_weights(metric, self.base.hkc_detector)}

    def _net(self, key: str, build: Callable[[], object]):
        if key not in self._nets:
            self._nets[key] = build()
        return self._nets[key]

    def _lpips(self):
        from .lpips import LPIPSNet

        return self._net("lpips", lambda: LPIPSNet.from_registry("alex").to(self.device))

    def _syncnet(self):
        def build():
            from .nets.syncnet import SyncNet

            net = SyncNet()
            net.load_state_dict(weights.load_state_dict("syncnet"), strict=False)
            return net.eval().to(self.device)

        return self._net("syncnet", build)

    def _arcface(self):
        from .identity import ArcFace

        return self._net("arcface", ArcFace)

    def _five_points(self):
        from ..faces.detect import FivePointDetector

        return self._net("five_points", FivePointDetector)

    def _set_metric(self, metric: str):
        if metric not in self._sets:
            from .frechet import FID, FVD, CleanFID

            cls = {"fid": FID, "fid_clean": CleanFID, "fvd": FVD}[metric]
            extractor = self._nets.get(metric)
            m = cls(extractor=extractor) if extractor is not None else cls()
            m.extractor.to(self.device)
            self._sets[metric] = m
        return self._sets[metric]

    # ------------------------------------------------------------------ per video

    def add_video(self, clip_id: str, pred: np.ndarray, gt: np.ndarray | None = None, source: np.ndarray | None = None,
                  audio: np.ndarray | None = None) -> list[dict]:
        """pred/gt: (T, H, W, 3) uint8 RGB at the protocol fps/size; source: (H, W, 3) uint8; audio: float32 mono
        at the protocol audio rate. Returns one row per per-video metric."""
        pred = np.ascontiguousarray(pred)
        if pred.ndim != 4 or pred.shape[-1] != 3 or pred.dtype != np.uint8:
            raise TalkbenchError(f"{clip_id}: pred must be (T, H, W, 3) uint8, found {pred.shape} {pred.dtype}")
        flags: list[str] = []
        if gt is not None:
            gt = np.ascontiguousarray(gt)
            if gt.shape[1:] != pred.shape[1:]:
                raise TalkbenchError(f"{clip_id}: gt frames {gt.shape[1:]} differ from pred frames {pred.shape[1:]}")
            if len(gt) != len(pred):
                flags.append("length_mismatch")
                n = min(len(gt), len(pred))
                pred_paired, gt_paired = pred[:n], gt[:n]
            else:
                pred_paired, gt_paired = pred, gt
        cache: dict = {}
        rows: list[dict] = []
        done: set[str] = set()
        for metric in self.metrics:
            if metric in done:
                continue
            if metric in SET_LEVEL:
                self._accumulate(metric, pred, gt)
                continue
            group = [m for m in SYNC_METRICS if m in self.metrics] if metric in SYNC_METRICS else [metric]
            done.update(group)
            if metric in self._missing:
                rows += [_row(m, None, 0, reason=f"missing weights: {self._missing[m]}", used=self._weights_of(m))
                         for m in group]
                continue
            needs = {"psnr": gt, "ssim": gt, "lpips": gt, "akd": gt, "aed": gt, "csim": source}
            if metric in needs and needs[metric] is None:
                what = "source image" if metric == "csim" else "ground truth"
                rows.append(_row(metric, None, 0, reason=f"no {what} given", used=self._weights_of(metric)))
                continue
            if metric in SYNC_METRICS and audio is None:
                rows += [_row(m, None, 0, reason="no audio given", used=self._weights_of(m)) for m in group]
                continue
            try:
                if metric in SYNC_METRICS:
                    rows += self._sync(pred, audio, group, flags)
                elif metric in ("psnr", "ssim", "lpips", "akd", "aed"):
                    rows.append(self._paired(metric, pred_paired, gt_paired, flags, cache))
                else:
                    rows.append(self._single(metric, pred, source, flags, cache))
            except Exception as exc:  # noqa: BLE001 - one failing metric must not stop the others; the reason is kept
                rows += [_row(m, None, 0, reason=f"{type(exc).__name__}: {exc}", used=self._weights_of(m)) for m in group]
        for row in rows:
            row.update(clip_id=clip_id, protocol_id=self.protocol_id, protocol_standard=self.protocol_standard)
        return rows

    def _paired(self, metric: str, pred: np.ndarray, gt: np.ndarray, flags: list[str], cache: dict) -> dict:
        from . import pixel

        n = len(pred)
        if metric in ("psnr", "ssim"):
            fn = pixel.psnr_frames if metric == "psnr" else pixel.ssim_frames
            values = []
            for i in range(0, n, CHUNK):
                p = torch.from_numpy(pred[i:i + CHUNK]).to(self.device)
                g = torch.from_numpy(gt[i:i + CHUNK]).to(self.device)
                values.append(fn(p, g, self.protocol.psnr_cap) if metric == "psnr" else fn(p, g))
            value = float(torch.cat(values).mean())
            return _row(metric, value, n, flags=flags)
        if metric == "lpips":
            from .lpips import uint8_to_lpips_input

            net = self._lpips()
            values = []
            with torch.no_grad():
                for i in range(0, n, CHUNK):
                    p = uint8_to_lpips_input(torch.from_numpy(pred[i:i + CHUNK]).to(self.device))
                    g = uint8_to_lpips_input(torch.from_numpy(gt[i:i + CHUNK]).to(self.device))
                    values.append(net(p, g).double().cpu())
            return _row(metric, float(torch.cat(values).mean()), n, flags=flags, used=self._weights_of(metric))
        if metric == "akd":
            from .motion import akd

            value, used_frames = akd(self._mesh(pred, cache, "pred"), self._mesh(gt, cache, "gt"))
            return _row(metric, value, used_frames, flags=flags, extra={"landmarks": "mediapipe-face-mesh-468"})
        # aed
        from .identity import aed

        pe, ge = self._embeddings(pred, cache, "pred"), self._embeddings(gt, cache, "gt")
        both = int((~np.isnan(pe.vectors[:, 0]) & ~np.isnan(ge.vectors[:, 0])).sum())
        return _row(metric, aed(pe.vectors, ge.vectors), both, flags=flags, used=self._weights_of(metric),
                    extra={"detector": pe.detector, "pred_failure_rate": pe.failure_rate,
                           "gt_failure_rate": ge.failure_rate})

    def _single(self, metric: str, pred: np.ndarray, source, flags: list[str], cache: dict) -> dict:
        if metric == "csim":
            from .identity import csim, embed_frames

            src = embed_frames(source[None], self._arcface(), self._five_points())
            if np.isnan(src.vectors[0, 0]):
                return _row(metric, None, 0, reason="no face found in the source image", used=self._weights_of(metric),
                            extra={"detector": src.detector})
            pe = self._embeddings(pred, cache, "pred")
            used_frames = int((~np.isnan(pe.vectors[:, 0])).sum())
            return _row(metric, csim(src.vectors[0], pe.vectors), used_frames, flags=flags, used=self._weights_of(metric),
                        extra={"detector": pe.detector, "detection_failure_rate": pe.failure_rate})
        if metric == "hkc":
            from .hands import hkc_frames

            scores = hkc_frames(pred, self.base.hkc_detector)
            return _row(metric, float(scores.mean()), len(scores), flags=flags, used=self._weights_of(metric),
                        extra={"detector": self.base.hkc_detector})
        if metric == "diversity":
            from ..faces.pose import head_pose
            from .motion import diversity, pose_diversity

            mesh = self._mesh(pred, cache, "pred")
            value, used_frames = diversity(mesh, pred.shape[2], pred.shape[1])
            pose = pose_diversity(head_pose(mesh))
            return _row(metric, value, used_frames, flags=flags,
                        extra={"landmarks": "mediapipe-face-mesh-468", "pose_std_deg": pose})
        raise ValueError(f"unknown metric {metric!r}; choose from {sorted(METRIC_NAMES)}")

    def _sync(self, pred: np.ndarray, audio: np.ndarray, group: list[str], flags: list[str]) -> list[dict]:
        from .sync import sync_scores

        result, extra = sync_scores(self._syncnet(), pred, audio, fps=self.protocol.fps, face_cropped=self.face_cropped,
                                    device=self.device)
        values = {"sync_c": result.sync_c, "sync_d": result.sync_d, "av_offset": float(result.av_offset)}
        return [_row(m, values[m], result.n_windows, flags=flags, used=self._weights_of(m), extra=extra) for m in group]

    def _mesh(self, frames: np.ndarray, cache: dict, key: str) -> np.ndarray:
        from ..faces.detect import mesh_landmarks

        if ("mesh", key) not in cache:
            cache[("mesh", key)] = mesh_landmarks(frames)
        return cache[("mesh", key)]

    def _embeddings(self, frames: np.ndarray, cache: dict, key: str):
        from .identity import embed_frames

        if ("emb", key) not in cache:
            cache[("emb", key)] = embed_frames(frames, self._arcface(), self._five_points())
        return cache[("emb", key)]

    # ------------------------------------------------------------------ set level

    def _accumulate(self, metric: str, pred: np.ndarray, gt: np.ndarray | None) -> None:
        if metric in self._missing:
            return
        m = self._set_metric(metric)
        if metric == "fvd":
            if len(pred) < self.protocol.fvd_frames or (gt is not None and len(gt) < self.protocol.fvd_frames):
                self._fvd_skipped += 1
                return
            m.update(torch.from_numpy(pred[None, : self.protocol.fvd_frames]).to(self.device), real=False)
            if gt is not None:
                m.update(torch.from_numpy(gt[None, : self.protocol.fvd_frames]).to(self.device), real=True)
            return
        for i in range(0, len(pred), CHUNK):
            m.update(torch.from_numpy(pred[i:i + CHUNK]).to(self.device), real=False)
        if gt is not None:
            for i in range(0, len(gt), CHUNK):
                m.update(torch.from_numpy(gt[i:i + CHUNK]).to(self.device), real=True)

    def finalize(self) -> list[dict]:
        rows = []
        for metric in (m for m in self.metrics if m in SET_LEVEL):
            used = self._weights_of(metric)
            if metric in self._missing:
                rows.append(_row(metric, None, 0, reason=f"missing weights: {self._missing[metric]}", used=used))
                continue
            m = self._sets.get(metric)
            n_fake = int(m.fake_n) if m is not None else 0
            n_real = int(m.real_n) if m is not None else 0
            extra = {"real": n_real, "fake": n_fake}
            if metric == "fvd":
                extra["skipped_short_clips"] = self._fvd_skipped
            if n_real < 2 or n_fake < 2:
                rows.append(_row(metric, None, n_fake, reason=f"need >= 2 real and fake samples, found {n_real} real "
                                 f"(ground truth) and {n_fake} generated", used=used, extra=extra))
                continue
            flags = []
            if metric in ("fid", "fid_clean") and min(n_real, n_fake) < self.protocol.fid_min_samples:
                flags.append(f"{metric}_below_{self.protocol.fid_min_samples}_samples")
            try:
                value = float(m.compute())
                rows.append(_row(metric, value, n_fake, flags=flags, used=used, extra=extra))
            except Exception as exc:  # noqa: BLE001 - unequal FVD counts, imaginary sqrtm: the row says why
                rows.append(_row(metric, None, n_fake, reason=f"{type(exc).__name__}: {exc}", flags=flags, used=used,
                                 extra=extra))
        for row in rows:
            row.update(clip_id=None, protocol_id=self.protocol_id, protocol_standard=self.protocol_standard)
        return rows
