"""PSNR and SSIM on uint8 RGB frames, per the protocol.

SSIM is Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, population covariance, mean over
the valid region (no padding) and over RGB channels. That is skimage's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
channel_axis=-1)``. skimage's *defaults* (7x7 uniform window, sample covariance) give other numbers.

Three backends give the same numbers (to 1e-6, tests/metrics/test_pixel.py):

- ``tiles`` (CPU default): float32 separable filtering with OpenCV on tiles that are each centred on their own
  integer mean, so every filtered value is small where the frame is flat and the float32 rounding stays ~1e-8
  on the final mean (see ``_ssim_frame_tiles``);
- ``ndimage``: the float64 reference path (scipy.ndimage, one channel at a time);
- ``matmul`` (GPU default): the separable filter as two batched float64 matrix products with banded (Toeplitz)
  Gaussian matrices, valid region only. It does ~20x the arithmetic of a direct filter, but as FP64 GEMMs, which
  GPUs run near their FP64 tensor-core peak, instead of cuDNN's slow generic float64 convolutions;
- ``conv``: one batch of float64 separable convolutions (the previous GPU path).
"""

from __future__ import annotations

import math
import threading

import numpy as np

import torch
import torch.nn.functional as F
from torchmetrics import Metric

DATA_RANGE = 255.0
K1, K2 = 0.01, 0.03
C1, C2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
SIGMA = 1.5
WIN = 11  # 2 * int(3.5 * sigma + 0.5) + 1, skimage's window for sigma 1.5 and truncate 3.5
TILE = 128  # output pixels per tile side on the CPU path (halo overhead 1.16x; 64 is 2x more exact, 25 % slower)
BACKENDS = ("auto", "conv", "matmul", "ndimage", "tiles")


def _as_frames(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 -> (N, 3, H, W) float64."""
    if x.ndim == 3:
        x = x[None]
    return x.permute(0, 3, 1, 2).to(torch.float64)


def psnr_frames(pred: torch.Tensor, target: torch.Tensor, cap: float | None = None) -> torch.Tensor:
    """Per-frame PSNR (N,) of uint8 RGB frames; identical frames give inf (or ``cap``).

    The squared error is summed exactly (OpenCV's integer L2 norm on the CPU, int64 elsewhere), so only the final
    division rounds.
    """
    if pred.shape != target.shape:
        raise ValueError(f"PSNR needs frames of one shape, found {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.ndim == 3:
        pred, target = pred[None], target[None]
    if pred.device.type == "cpu" and pred.dtype == torch.uint8:
        import cv2

        a, b = pred.numpy(), target.numpy()
        sse = torch.tensor([cv2.norm(np.ascontiguousarray(a[i]), np.ascontiguousarray(b[i]), cv2.NORM_L2SQR)
                            for i in range(len(a))], dtype=torch.float64)
    elif pred.dtype.is_floating_point:
        d = pred.to(torch.float64) - target.to(torch.float64)
        sse = (d * d).flatten(1).sum(1)
    else:
        d = pred.to(torch.int32) - target.to(torch.int32)
        sse = (d * d).flatten(1).sum(1, dtype=torch.int64).to(torch.float64)
    mse = sse / pred[0].numel()
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
    return ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux * ux + uy * uy + C1) * (vsum + C2))


def _ssim_frame_numpy(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> float:
    """Reference path. One frame, (3, H, W) float64 each: the four moment maps of each channel filtered by two C
    passes (scipy.ndimage), valid region only."""
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


def _tile_starts(n_out: int) -> tuple[list[int], int]:
    """Equal tiles of about TILE covering ``n_out`` output rows; the last one is moved back to end at the edge."""
    size = -(-n_out // -(-n_out // TILE))
    starts = list(range(0, n_out - size + 1, size))
    if starts[-1] + size < n_out:
        starts.append(n_out - size)
    return starts, size


class _TileWorkspace:
    """Buffers for ``_ssim_frame_tiles``, allocated once per frame shape: fresh multi-megabyte arrays per frame
    cost more in page faults than the arithmetic."""

    def __init__(self, h: int, w: int, c: int):
        r = WIN // 2
        self.c, self.r = c, r
        self.ys, self.th = _tile_starts(h - 2 * r)
        self.xs, self.tw = _tile_starts(w - 2 * r)
        ny, nx = len(self.ys), len(self.xs)
        self.n_out = (h - 2 * r) * (w - 2 * r)
        self.ph, self.pw = self.th + 2 * r, self.tw + 2 * r
        self.mosaic = np.empty((4 * c * ny * self.ph, nx * self.pw), np.float32)
        self.filtered = np.empty_like(self.mosaic)
        self.tmp = np.empty((6, ny, self.th, nx, self.tw), np.float32)
        self.moments = np.empty((4, ny, self.th, nx, self.tw), np.float32)
        # Each output pixel counted once: a moved-back last tile skips what its neighbour already covered.
        keep = np.zeros((ny, self.th, nx, self.tw), np.float32)
        for ti, i in enumerate(self.ys):
            i0 = self.ys[ti - 1] + self.th - i if ti else 0
            for tj, j in enumerate(self.xs):
                j0 = self.xs[tj - 1] + self.tw - j if tj else 0
                keep[ti, i0:, tj, j0:] = 1.0
        self.overlap = None if keep.all() else keep


def _ssim_frame_tiles(a: np.ndarray, b: np.ndarray, g32: np.ndarray, ws: _TileWorkspace) -> float:
    """One frame, (H, W, 3) uint8 each, in float32 with OpenCV; equals the float64 path to <4e-7 (measured).

    Why float32 is exact enough here. SSIM's contrast-structure term is rewritten with d = x - y:
    2 cov(x, y) = var(x) + var(y) - var(d), so cs = 1 - var(d) / (var(x) + var(y) + C2). Variances are
    shift-invariant, so each tile (about 128x128 outputs plus the 5-pixel halo) is shifted by its own integer mean
    (exact in float32) before filtering: the filtered moments are then of the order of the *local* contrast,
    and float32's relative rounding (~1e-7) turns into an absolute error that is small next to var + C2 where
    the frame is flat and small relative to var where it is not. The means are shifted back for the
    luminance term. All tiles' twelve maps (x, y, x^2 + y^2, d^2 per channel) go through one
    ``cv2.sepFilter2D`` call: tiles sit side by side in one mosaic image, and since a valid output pixel only
    reads pixels of its own tile, the neighbours change nothing inside the crops.
    """
    import cv2

    c, r, ys, xs, th, tw, ph, pw = ws.c, ws.r, ws.ys, ws.xs, ws.th, ws.tw, ws.ph, ws.pw
    ny, nx = len(ys), len(xs)
    maps = ws.mosaic.reshape(4, c, ny, ph, nx, pw)
    for src, dst in ((a, maps[0]), (b, maps[1])):
        planes = src.transpose(2, 0, 1)
        for ti, i in enumerate(ys):
            for tj, j in enumerate(xs):
                dst[:, ti, :, tj] = planes[:, i:i + ph, j:j + pw]
    # The shift only has to be near the tile's mean, not equal to it: a 1-in-8 subsample per axis is enough.
    cx = np.rint(maps[0][:, :, ::8, :, ::8].mean(axis=(2, 4), keepdims=True))  # (c, ny, 1, nx, 1)
    cy = np.rint(maps[1][:, :, ::8, :, ::8].mean(axis=(2, 4), keepdims=True))
    maps[0] -= cx
    maps[1] -= cy
    np.multiply(maps[1], maps[1], out=maps[3])
    np.multiply(maps[0], maps[0], out=maps[2])
    maps[2] += maps[3]
    np.subtract(maps[0], maps[1], out=maps[3])
    maps[3] *= maps[3]
    cv2.sepFilter2D(ws.mosaic, -1, g32, g32, dst=ws.filtered, borderType=cv2.BORDER_CONSTANT)
    moments = ws.filtered.reshape(4, c, ny, ph, nx, pw)[:, :, :, r:-r, :, r:-r]
    # The formula in float32 too, one channel at a time (L2-sized pieces): every term is of the order of the
    # local contrast (see above), so its rounding stays below the filter's; only the sum is float64.
    vs, vd, lx, ly, den, t = ws.tmp
    total = 0.0
    for k in range(c):
        np.copyto(ws.moments, moments[:, k])  # contiguous: numpy's loops on the cropped views are 4x slower
        ux, uy, usq, udd = ws.moments  # (ny, th, nx, tw) each
        np.multiply(ux, ux, out=t)
        np.subtract(usq, t, out=vs)
        np.multiply(uy, uy, out=t)
        vs -= t
        vs += C2  # var(x) + var(y) + C2
        np.subtract(ux, uy, out=vd)
        vd *= vd
        np.subtract(udd, vd, out=vd)  # var(x - y)
        np.subtract(vs, vd, out=vd)  # 2 cov(x, y) + C2
        np.add(ux, cx[k], out=lx)
        np.add(uy, cy[k], out=ly)
        np.multiply(lx, lx, out=den)
        np.multiply(ly, ly, out=t)
        den += t
        den += C1
        den *= vs
        lx *= ly
        lx *= 2
        lx += C1
        lx *= vd
        lx /= den  # the SSIM map of channel k
        if ws.overlap is not None:
            lx *= ws.overlap
        total += float(lx.sum(dtype=np.float64))
    return total / (ws.n_out * c)


def toeplitz_window(n: int, device=None) -> torch.Tensor:
    """(n, n - WIN + 1) float64 matrix M with (x @ M)[..., j] = sum_k g[k] x[..., j + k]: the valid filter."""
    g = gaussian_window().to(device)
    m = torch.zeros(n, n - WIN + 1, dtype=torch.float64, device=device)
    cols = torch.arange(n - WIN + 1, device=device)
    for k in range(WIN):
        m[cols + k, cols] = g[k]
    return m


def _ssim_matmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x, y (N, C, H, W) float64 -> (N,) SSIM: both filter passes as batched GEMMs."""
    n, c, h, w = x.shape
    mw, mh = toeplitz_window(w, x.device), toeplitz_window(h, x.device)
    maps = torch.cat([x, y, x * x + y * y, x * y], 1)  # (N, 4C, H, W)
    maps = mh.t() @ (maps @ mw)  # (N, 4C, H-10, W-10)
    s = _ssim_map_stats(*maps.reshape(n, 4, c, h - WIN + 1, w - WIN + 1).unbind(1))
    return s.mean(dim=(2, 3)).mean(1)


def ssim_frames(pred: torch.Tensor, target: torch.Tensor, threads: int = 1, backend: str = "auto") -> torch.Tensor:
    """Per-frame SSIM (N,) float64 of uint8 RGB frames, mean over the valid region and the 3 channels.

    ``auto`` is ``tiles`` on the CPU and ``matmul`` elsewhere; every backend gives skimage's numbers to 1e-6.
    ``threads`` > 1 scores frames in parallel on the CPU (OpenCV and scipy release the GIL).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown SSIM backend {backend!r}; choose from {sorted(BACKENDS)}")
    if pred.shape != target.shape:
        raise ValueError(f"SSIM needs frames of one shape, found {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.ndim == 3:
        pred, target = pred[None], target[None]
    n, h, w, c = pred.shape
    if h < WIN or w < WIN:
        raise ValueError(f"SSIM needs frames of at least {WIN}x{WIN}, found {h}x{w}")
    if backend == "auto":
        backend = "tiles" if pred.device.type == "cpu" else "matmul"
    if backend in ("tiles", "ndimage"):
        g = gaussian_window().numpy()
        if backend == "tiles":
            a, b, g32 = pred.cpu().numpy(), target.cpu().numpy(), g.astype(np.float32)
            spaces = threading.local()

            def one(i):
                if not hasattr(spaces, "ws"):
                    spaces.ws = _TileWorkspace(h, w, c)
                return _ssim_frame_tiles(a[i], b[i], g32, spaces.ws)
        else:
            xs, ys = _as_frames(pred).cpu().numpy(), _as_frames(target).cpu().numpy()
            one = lambda i: _ssim_frame_numpy(xs[i], ys[i], g)  # noqa: E731
        if threads > 1 and n > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(threads) as pool:
                values = list(pool.map(one, range(n)))
        else:
            values = [one(i) for i in range(n)]
        return torch.tensor(values, dtype=torch.float64)
    x, y = _as_frames(pred), _as_frames(target)
    if backend == "matmul":
        return _ssim_matmul(x, y)
    g = gaussian_window().to(x.device)
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
