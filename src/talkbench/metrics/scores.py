"""Compute entries of the registered metrics (``METRICS[...].compute`` points here): one small function per metric.

A per-clip entry is ``fn(ev, video) -> Score`` (or ``{name: Score}`` for metrics computed together); ``ev`` is the
Evaluator, which owns the device, the protocol, the shared networks and the per-video caches. A set-level entry is
``fn(ev) -> accumulator`` whose ``add(pred, gt)`` takes each video and ``result()`` gives the set's Score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

CHUNK = 32  # frames per network batch


@dataclass
class Video:
    clip_id: str
    pred: np.ndarray  # (T, H, W, 3) uint8, every generated frame
    gt: np.ndarray | None  # ground truth (or driver), cut with ``pred_paired`` to the common length
    pred_paired: np.ndarray
    source: np.ndarray | None  # (H, W, 3) uint8
    audio: np.ndarray | None  # float32 mono at the protocol audio rate
    cache: dict = field(default_factory=dict)  # landmarks and embeddings shared by the metrics of one video


@dataclass
class Score:
    value: float | None
    n: int
    extra: dict = field(default_factory=dict)
    reason: str | None = None
    flags: bool = True  # False: the video's flags (length mismatch) do not apply to this row
    own_flags: tuple[str, ...] = ()  # flags of this row only (FID below the protocol's sample count)


# ----------------------------------------------------------------------------- pixel and perceptual


def _pixel(ev, video: Video, fn, *args) -> Score:
    values = []
    for i in range(0, len(video.pred_paired), CHUNK):
        p = torch.from_numpy(video.pred_paired[i:i + CHUNK]).to(ev.device)
        g = torch.from_numpy(video.gt[i:i + CHUNK]).to(ev.device)
        values.append(fn(p, g, *args))
    return Score(float(torch.cat(values).mean()), len(video.pred_paired))


def psnr(ev, video: Video) -> Score:
    from .pixel import psnr_frames

    return _pixel(ev, video, psnr_frames, ev.protocol.psnr_cap)


def ssim(ev, video: Video) -> Score:
    from .pixel import ssim_frames

    return _pixel(ev, video, ssim_frames)


def lpips(ev, video: Video) -> Score:
    from .lpips import LPIPSNet, uint8_to_lpips_input

    net = ev.net("lpips", lambda: LPIPSNet.from_registry("alex").to(ev.device))
    values = []
    with torch.no_grad():
        for i in range(0, len(video.pred_paired), CHUNK):
            p = uint8_to_lpips_input(torch.from_numpy(video.pred_paired[i:i + CHUNK]).to(ev.device))
            g = uint8_to_lpips_input(torch.from_numpy(video.gt[i:i + CHUNK]).to(ev.device))
            values.append(net(p, g).double().cpu())
    return Score(float(torch.cat(values).mean()), len(video.pred_paired))


# ----------------------------------------------------------------------------- faces: landmarks and identity


def mesh(video: Video, key: str) -> np.ndarray:
    """Face Mesh landmarks of ``pred`` (all frames), ``pred_paired`` or ``gt``, computed once per video."""
    from ..faces.detect import mesh_landmarks

    key = "pred" if key == "pred_paired" and video.pred_paired is video.pred else key
    if ("mesh", key) not in video.cache:
        video.cache[("mesh", key)] = mesh_landmarks(getattr(video, key))
    return video.cache[("mesh", key)]


def _arcface(ev):
    from .identity import ArcFace

    return ev.net("arcface", ArcFace)


def _five_points(ev):
    from ..faces.detect import FivePointDetector

    return ev.net("five_points", FivePointDetector)


def embeddings(ev, video: Video, key: str):
    from .identity import embed_frames

    key = "pred" if key == "pred_paired" and video.pred_paired is video.pred else key
    if ("emb", key) not in video.cache:
        video.cache[("emb", key)] = embed_frames(getattr(video, key), _arcface(ev), _five_points(ev))
    return video.cache[("emb", key)]


def akd(ev, video: Video) -> Score:
    from .motion import akd as akd_core

    value, used = akd_core(mesh(video, "pred_paired"), mesh(video, "gt"))
    return Score(value, used, {"landmarks": "mediapipe-face-mesh-468"})


def aed(ev, video: Video) -> Score:
    from .identity import aed as aed_core

    pe, ge = embeddings(ev, video, "pred_paired"), embeddings(ev, video, "gt")
    both = int((~np.isnan(pe.vectors[:, 0]) & ~np.isnan(ge.vectors[:, 0])).sum())
    return Score(aed_core(pe.vectors, ge.vectors), both, {"detector": pe.detector, "pred_failure_rate": pe.failure_rate,
                                                          "gt_failure_rate": ge.failure_rate})


def csim(ev, video: Video) -> Score:
    from .identity import csim as csim_core
    from .identity import embed_frames

    src = embed_frames(video.source[None], _arcface(ev), _five_points(ev))
    if np.isnan(src.vectors[0, 0]):
        return Score(None, 0, {"detector": src.detector}, reason="no face found in the source image", flags=False)
    pe = embeddings(ev, video, "pred")
    used = int((~np.isnan(pe.vectors[:, 0])).sum())
    return Score(csim_core(src.vectors[0], pe.vectors), used,
                 {"detector": pe.detector, "detection_failure_rate": pe.failure_rate})


def diversity(ev, video: Video) -> Score:
    from ..faces.pose import head_pose
    from .motion import diversity as diversity_core
    from .motion import pose_diversity

    m = mesh(video, "pred")
    h, w = video.pred.shape[1:3]
    value, used = diversity_core(m, w, h)
    return Score(value, used, {"landmarks": "mediapipe-face-mesh-468", "pose_std_deg": pose_diversity(head_pose(m))})


def hkc(ev, video: Video) -> Score:
    from .hands import hkc_frames

    scores = hkc_frames(video.pred, ev.base.hkc_detector)
    return Score(float(scores.mean()), len(scores), {"detector": ev.base.hkc_detector})


# ----------------------------------------------------------------------------- audio-visual sync


def sync(ev, video: Video) -> dict[str, Score]:
    from .. import weights
    from .nets.syncnet import SyncNet
    from .sync import sync_scores

    def build():
        net = SyncNet()
        net.load_state_dict(weights.load_state_dict("syncnet"), strict=False)
        return net.eval().to(ev.device)

    result, extra = sync_scores(ev.net("syncnet", build), video.pred, video.audio, fps=ev.protocol.fps,
                                face_cropped=ev.face_cropped, device=ev.device)
    values = {"sync_c": result.sync_c, "sync_d": result.sync_d, "av_offset": float(result.av_offset)}
    return {m: Score(v, result.n_windows, extra) for m, v in values.items()}


# ----------------------------------------------------------------------------- set level (Fréchet distances)


class FrechetSet:
    """Generated frames (or 16-frame clips for FVD) against the ground truth's, over every video of the set.

    With ``Evaluator.use_reference_stats`` the ground truth's statistics come from the reference-statistics cache
    (its frames are then only used for FVD's clip-length rule), or are stored there once computed; the row's
    ``extra.reference_stats`` says which ("hit", "miss", "corrupt")."""

    def __init__(self, ev, metric: str):
        from .frechet import FID, FVD, CleanFID

        cls = {"fid": FID, "fid_clean": CleanFID, "fvd": FVD}[metric]
        extractor = ev.injected(metric)
        # The whole Metric moves: its float64 states and its extractor (a child module). Moving only the extractor
        # left the states on the CPU and crashed the first update on CUDA.
        self.m = (cls(extractor=extractor) if extractor is not None else cls()).to(ev.device)
        self.metric, self.device, self.protocol = metric, ev.device, ev.protocol
        self.skipped = 0
        self.cache, self.cache_status = None, None
        reference = getattr(ev, "reference_stats", None)
        if reference is not None and metric in reference[1]:
            cache, key = reference[0], reference[1][metric]
            lookup = cache.load(key)
            self.cache, self.cache_status = (cache, key), lookup.status
            if lookup.stats is not None:
                self.m.set_real_stats(lookup.stats.mu, lookup.stats.sigma, lookup.stats.n)

    @property
    def cached_real(self) -> bool:
        return self.m.real_reference is not None

    def to(self, device) -> "FrechetSet":
        self.m, self.device = self.m.to(device), device
        return self

    def add(self, pred: np.ndarray, gt: np.ndarray | None) -> None:
        if self.metric == "fvd":
            k = self.protocol.fvd_frames
            if len(pred) < k or (gt is not None and len(gt) < k):
                self.skipped += 1
                return
            self.m.update(torch.from_numpy(pred[None, :k]).to(self.device), real=False)
            if gt is not None and not self.cached_real:
                self.m.update(torch.from_numpy(gt[None, :k]).to(self.device), real=True)
            return
        for side, frames in ((False, pred), (True, None if self.cached_real else gt)):
            if frames is not None:
                for i in range(0, len(frames), CHUNK):
                    self.m.update(torch.from_numpy(frames[i:i + CHUNK]).to(self.device), real=side)

    def result(self) -> Score:
        from .stats_cache import ReferenceStats

        n_fake = int(self.m.fake_n)
        n_real = self.m.real_reference[2] if self.cached_real else int(self.m.real_n)
        extra = {"real": n_real, "fake": n_fake}
        if self.metric == "fvd":
            extra["skipped_short_clips"] = self.skipped
        if self.cache_status is not None:
            extra["reference_stats"] = self.cache_status
        if n_real < 2 or n_fake < 2:
            return Score(None, n_fake, extra, reason=f"need >= 2 real and fake samples, found {n_real} real "
                                                     f"(ground truth) and {n_fake} generated")
        if self.cache is not None and not self.cached_real:
            self.cache[0].save(self.cache[1], ReferenceStats(*self.m.stats("real")))
        flags = []
        if self.metric in ("fid", "fid_clean") and min(n_real, n_fake) < self.protocol.fid_min_samples:
            flags.append(f"{self.metric}_below_{self.protocol.fid_min_samples}_samples")
        try:
            return Score(float(self.m.compute()), n_fake, extra, own_flags=tuple(flags))
        except Exception as exc:  # noqa: BLE001 - unequal FVD counts, imaginary sqrtm: the row says why
            return Score(None, n_fake, extra, reason=f"{type(exc).__name__}: {exc}", own_flags=tuple(flags))


def fid(ev) -> FrechetSet:
    return FrechetSet(ev, "fid")


def fid_clean(ev) -> FrechetSet:
    return FrechetSet(ev, "fid_clean")


def fvd(ev) -> FrechetSet:
    return FrechetSet(ev, "fvd")


def akd_driver(ev, video):
    """Compute entry of ``akd_driver``: ``video.gt`` holds the driver frames."""
    from .motion import NORMALISATION, driver_agreement

    value, used = driver_agreement(mesh(video, "pred_paired"), mesh(video, "gt"))
    extra = {"normalisation": NORMALISATION, "compared_with": "driver", "face_frames": used,
             "frames": int(len(video.pred_paired))}
    if value is None:
        return Score(None, 0, extra, reason="no face found in generated and driver frames", flags=False)
    return Score(value, used, extra, flags=False)
