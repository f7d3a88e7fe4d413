"""PSNR and SSIM on uint8 RGB frames, per the protocol.

SSIM is Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, population covariance, mean over
the valid region (no padding) and over RGB channels. That is skimage's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
channel_axis=-1)``. skimage's *defaults* (7x7 uniform window, sample covariance) give other numbers.
Computed in float64 with separable convolutions, batched over frames.
"""

from __future__ import annotations

import math

import numpy as np

import torch
import torch.nn.functional as F
from torchmetrics import Metric

DATA_RANGE = 255.0
K1, K2 = 0.01, 0.03
SIGMA = 1.5
WIN = 11  # 2 * int(3.5 * sigma + 0.5) + 1, skimage's window for sigma 1.5 and truncate 3.5


def _as_frames(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 -> (N, 3, H, W) float64."""
    if x.ndim == 3:
        x = x[None]
    return x.permute(0, 3, 1, 2).to(torch.float64)


def psnr_frames(pred: torch.Tensor, target: torch.Tensor, cap: float | None = None) -> torch.Tensor:
    """Per-frame PSNR (N,) of uint8 RGB frames; identical frames give inf (or ``cap``)."""
    mse = (_as_frames(pred) - _as_frames(target)).pow(2).mean(dim=(1, 2, 3))
    values = 10.0 * torch.log10(DATA_RANGE**2 / mse)
    if cap is not None:
        values = values.clamp(max=cap)
    return values


def gaussian_window(sigma: float = SIGMA, size: int = WIN) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _ssim_map_stats(ux, uy, usq, uxy):
    """SSIM map from the filtered x, y, x^2 + y^2 and xy.

    The formula only needs vx + vy, so x^2 and y^2 are filtered as one map (four filters instead of five);
    the inputs are integers, so x^2 + y^2 is exact and the result equals the five-map form to rounding.
    """
    vsum, vxy = usq - ux * ux - uy * uy, uxy - ux * uy
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vsum + c2))


def _ssim_frame_numpy(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> float:
    """One frame, (3, H, W) float64 each: the four moment maps of each channel filtered by two C passes
    (scipy.ndimage), valid region only.

    One channel at a time keeps every map (0.5 MB at 256x256) in cache; batching frames or stacking the maps is
    several times slower on a CPU (measured in benchmarks/metrics_cpu.py).
    """
    from scipy import ndimage

    r = WIN // 2
    total = 0.0
    for xc, yc in zip(x, y):
        maps = []
        for m in (xc, yc, xc * xc + yc * yc, xc * yc):
            m = ndimage.correlate1d(m, g, axis=1, mode="constant")[:, r:-r]
            maps.append(ndimage.correlate1d(m, g, axis=0, mode="constant")[r:-r])
        total += float(_ssim_map_stats(*maps).mean())
    return total / len(x)


def ssim_frames(pred: torch.Tensor, target: torch.Tensor, threads: int = 1, backend: str = "auto") -> torch.Tensor:
    """Per-frame SSIM (N,) float64 of uint8 RGB frames, mean over the valid region and the 3 channels.

    On a GPU the frames are filtered as one batch of separable float64 convolutions; on the CPU one frame at a
    time with scipy.ndimage (faster there, see benchmarks/metrics_cpu.py). Both give skimage's numbers.
    """
    x, y = _as_frames(pred), _as_frames(target)
    n, c, h, w = x.shape
    if h < WIN or w < WIN:
        raise ValueError(f"SSIM needs frames of at least {WIN}x{WIN}, found {h}x{w}")
    g = gaussian_window().to(x.device)
    if backend not in ("auto", "ndimage", "conv"):
        raise ValueError(f"unknown SSIM backend {backend!r}; choose from ['auto', 'conv', 'ndimage']")
    if backend == "ndimage" or (backend == "auto" and x.device.type == "cpu"):
        xs, ys, gn = x.numpy(), y.numpy(), g.numpy()
        if threads > 1 and n > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(threads) as pool:  # scipy.ndimage releases the GIL
                values = list(pool.map(lambda i: _ssim_frame_numpy(xs[i], ys[i], gn), range(n)))
        else:
            values = [_ssim_frame_numpy(xs[i], ys[i], gn) for i in range(n)]
        return torch.tensor(values, dtype=torch.float64)
    # Stack the four moment maps of every channel and filter them in one separable pass ("valid" region only).
    maps = torch.cat([x, y, x * x + y * y, x * y], 1).reshape(n * 4 * c, 1, h, w)
    maps = F.conv2d(maps, g.view(1, 1, 1, WIN))
    maps = F.conv2d(maps, g.view(1, 1, WIN, 1))
    s = _ssim_map_stats(*maps.reshape(n, 4, c, h - WIN + 1, w - WIN + 1).unbind(1))
    return s.mean(dim=(2, 3)).mean(1)


class _FrameMean(Metric):
    """Mean of a per-frame value; float64 sums so chunked updates equal one update."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _values(self, pred, target):  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        values = self._values(pred, target)
        self.total += values.sum()
        self.count += values.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count


class PSNR(_FrameMean):
    higher_is_better = True

    def __init__(self, cap: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.cap = cap

    def _values(self, pred, target):
        return psnr_frames(pred, target, self.cap)


class SSIM(_FrameMean):
    higher_is_better = True

    def _values(self, pred, target):
        return ssim_frames(pred, target)


def psnr_value(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(DATA_RANGE**2 / mse)
