"""Frechet distances between Gaussian feature statistics: FID (pytorch-fid), clean-fid, FVD (StyleGAN-V).

The ``Metric`` classes keep running float64 sums (sum, sum of outer products, count) per side, so memory stays
constant and merging ranks is an exact sum. FID uses the N-1 covariance (pytorch-fid), FVD the population
covariance (StyleGAN-V). Feature extractors are passed in, so the classes are tested with random weights.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from torch import nn
from torchmetrics import Metric

from ..errors import ConfigError


class ImaginaryComponentError(ValueError):
    """sqrtm gave a covariance product with a non-negligible imaginary diagonal."""


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1-mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), with pytorch-fid's eps*I retry and imaginary-part check."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape}/{s1.shape} vs {mu2.shape}/{s2.shape}")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        # A singular product: retry on slightly regularised covariances, as pytorch-fid does.
        offset = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ImaginaryComponentError(f"imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def gaussian_stats(feats: np.ndarray, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(feats, np.float64)
    return feats.mean(0), np.cov(feats, rowvar=False, ddof=ddof)


def _module_device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


class _FrechetMetric(Metric):
    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    ddof = 1

    def __init__(self, extractor: nn.Module, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.extractor = extractor
        self.dim = dim
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", default=torch.zeros(dim, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", default=torch.zeros(dim, dim, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_features(self, feats: torch.Tensor, real: bool) -> None:
        side = "real" if real else "fake"
        # the states' device, not the extractor's: a metric moved with ``.to(device)`` keeps its sums there
        f = feats.to(device=getattr(self, f"{side}_sum").device, dtype=torch.float64)
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + f.shape[0])

    def update(self, x: torch.Tensor, real: bool) -> None:
        with torch.no_grad():
            self.update_features(self.features(x), real)

    def stats(self, side: str) -> tuple[np.ndarray, np.ndarray, int]:
        n = int(getattr(self, f"{side}_n"))
        if n <= self.ddof:
            raise ConfigError(f"{type(self).__name__}: {n} {side} samples, need at least {self.ddof + 1}")
        s = getattr(self, f"{side}_sum").cpu().numpy()
        outer = getattr(self, f"{side}_outer").cpu().numpy()
        mu = s / n
        cov = (outer - n * np.outer(mu, mu)) / (n - self.ddof)
        return mu, cov, n

    def compute(self) -> torch.Tensor:
        mu1, s1, _ = self.stats("real")
        mu2, s2, _ = self.stats("fake")
        return torch.tensor(frechet_distance(mu1, s1, mu2, s2), dtype=torch.float64)


class FID(_FrechetMetric):
    """pytorch-fid protocol: uint8 RGB frames (N, H, W, 3) -> FID Inception pool3 -> Frechet (N-1 covariance)."""

    def __init__(self, extractor: nn.Module | None = None, **kwargs):
        if extractor is None:
            from .. import weights
            from .nets.inception import FIDInceptionV3

            extractor = FIDInceptionV3()
            extractor.load_state_dict(weights.load_state_dict("fid-inception"), strict=False)
        super().__init__(extractor.eval(), 2048, **kwargs)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W) in [0, 1]
        return self.extractor(x.to(_module_device(self.extractor)))


def clean_resize(frames: np.ndarray, size: int = 299) -> np.ndarray:
    """clean-fid's resize: PIL bicubic per channel in float mode ('F'), then clip to [0, 255]."""
    from PIL import Image

    out = np.empty((len(frames), size, size, 3), np.float32)
    for i, frame in enumerate(frames):
        for c in range(3):
            img = Image.fromarray(frame[:, :, c].astype(np.float32), mode="F")
            out[i, :, :, c] = np.asarray(img.resize((size, size), resample=Image.BICUBIC))
    return np.clip(out, 0, 255)


class CleanFID(_FrechetMetric):
    """clean-fid (mode 'clean'): PIL bicubic resize to 299, (x-128)/128, TorchScript Inception ``layers``."""

    def __init__(self, extractor: nn.Module | None = None, **kwargs):
        if extractor is None:
            from .. import weights

            extractor = weights.load_torchscript("clean-fid-inception")
        super().__init__(extractor, 2048, **kwargs)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        x = torch.from_numpy(clean_resize(frames.cpu().numpy())).permute(0, 3, 1, 2)
        x = ((x - 128.0) / 128.0).to(_module_device(self.extractor))
        layers = self.extractor.layers
        return layers(x).reshape(len(x), 2048)


FVD_SIZE = 224


class FVD(_FrechetMetric):
    """StyleGAN-V protocol: clips (N, T, H, W, 3) uint8, first 16 frames, I3D(rescale, resize) 400-d, population cov."""

    ddof = 0

    def __init__(self, extractor: nn.Module | None = None, num_frames: int = 16, **kwargs):
        if extractor is None:
            from .. import weights

            extractor = weights.load_torchscript("i3d")
        super().__init__(extractor, 400, **kwargs)
        self.num_frames = num_frames

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.shape[1] < self.num_frames:
            raise ConfigError(f"FVD needs clips of at least {self.num_frames} frames, found {clips.shape[1]}")
        x = clips[:, : self.num_frames].permute(0, 4, 1, 2, 3).float()  # (N, 3, T, H, W), uint8 values 0..255
        x = x.to(_module_device(self.extractor))
        return self.extractor(x, rescale=True, resize=True, return_features=True)

    def compute(self) -> torch.Tensor:
        if int(self.real_n) != int(self.fake_n):
            raise ConfigError(f"FVD needs equal real/fake clip counts, found {int(self.real_n)} real vs {int(self.fake_n)} fake")
        return super().compute()
