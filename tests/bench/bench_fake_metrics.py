"""A small stand-in Evaluator with the talkbench.metrics.evaluate API, for testing the bench orchestration only.

PSNR is real (uint8, data range 255, per frame then mean); "meanabs" is the mean absolute difference to the source;
FID here is a Fréchet distance between per-frame mean colours (a real formula on tiny features). "lpips" always
reports missing weights, to exercise the null path. Metric numerics are tested in tests/metrics, not here.
"""

from __future__ import annotations

import json

import numpy as np
from scipy import linalg

from talkbench.manifests.protocols import EvalProtocol, register_protocol

PROTOCOL = register_protocol(EvalProtocol("stand-in-64", fps=25.0, size=64, metrics=("psnr", "csim", "lpips", "fid")))
OTHER = register_protocol(EvalProtocol("stand-in-other-64", fps=25.0, size=64, metrics=("psnr",)))
SET_LEVEL = ("fid", "fvd", "fid_clean")
CALLS = {"add_video": 0}


class Evaluator:
    def __init__(self, protocol_id="stand-in-64", metrics=None, device="cpu", face_cropped=False):
        self.protocol_id = protocol_id
        self.metrics = list(metrics or PROTOCOL.metrics)
        self.protocol_standard = True
        self._real, self._fake, self._clips = [], [], 0

    def missing_weights(self):
        return {"lpips": "talkbench weights fetch lpips-alex"} if "lpips" in self.metrics else {}

    def add_video(self, clip_id, pred, gt=None, source=None, audio=None):
        CALLS["add_video"] += 1
        assert pred.dtype == np.uint8 and pred.ndim == 4
        rows = []
        for m in self.metrics:
            if m in SET_LEVEL:
                continue
            row = {"metric": m, "value": None, "null_reason": None, "n": len(pred), "flags": None,
                   "weights": json.dumps({}), "extra": None}
            if m in ("psnr", "akd") and gt is not None:
                err = ((pred.astype(np.float64) - gt.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
                row["value"] = float(np.mean(10 * np.log10(255.0 ** 2 / err))) if (err > 0).all() else float("inf")
            elif m == "csim" and source is not None:
                row["value"] = float(1 - np.abs(pred.astype(np.float64) - source).mean() / 255)
            elif m in ("sync_c", "sync_d", "av_offset") and audio is None:
                row["null_reason"] = "no_audio"
            else:
                row["null_reason"] = "missing_weights"
                row["extra"] = json.dumps({"install": "talkbench weights fetch lpips-alex"})
            rows.append(row)
        if any(m in SET_LEVEL for m in self.metrics):
            self._fake.append(pred.reshape(len(pred), -1, 3).mean(axis=1))
            self._real.append(gt.reshape(len(gt), -1, 3).mean(axis=1))
            self._clips += 1
        return rows

    def finalize(self):
        rows = []
        for m in self.metrics:
            if m not in SET_LEVEL:
                continue
            if m != "fid":
                rows.append({"metric": m, "value": None, "null_reason": "missing_weights", "n": self._clips})
                continue
            a, b = np.concatenate(self._fake), np.concatenate(self._real)
            mu1, mu2 = a.mean(0), b.mean(0)
            s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
            covmean = linalg.sqrtm(s1 @ s2 + 1e-6 * np.eye(3)).real
            value = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
            rows.append({"metric": m, "value": max(value, 0.0), "null_reason": None, "n": self._clips,
                         "flags": "fid_below_2048_samples", "weights": json.dumps({}), "extra": None})
        return rows


class NonStandardEvaluator(Evaluator):
    """Like the real Evaluator with a non-official weights file: the protocol id names the files the metrics use."""

    def __init__(self, protocol_id="stand-in-64", metrics=None, device="cpu", face_cropped=False):
        super().__init__(protocol_id, metrics, device, face_cropped)
        self.protocol_standard = False
        self.protocol_id = f"{protocol_id}+nonstd.{'-'.join(sorted(self.metrics))}"
