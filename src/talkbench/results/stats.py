"""Summary statistics shared by `bench run` summaries and leaderboard cells (talkbench.results.summary).

The confidence interval is a seeded percentile bootstrap over clips: resample the per-clip values with replacement
``n_boot`` times, take the mean of each resample, and report the 2.5th and 97.5th percentiles. The seed makes the
interval reproducible, so a rerun gives the same table. Set-level metrics (FID, FVD) have one value per set and no
per-clip values, so they get no interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_BOOT = 1000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Estimate:
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int  # values the mean is taken over (clips, or clips in the set for set-level metrics)

    @property
    def half_width(self) -> float | None:
        if self.ci_low is None or self.ci_high is None or not math.isfinite(self.ci_high - self.ci_low):
            return None
        return (self.ci_high - self.ci_low) / 2


def bootstrap_ci(values, *, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED, level: float = 0.95) -> Estimate:
    """Mean and percentile-bootstrap CI of finite or infinite values (nulls must be removed by the caller).

    An infinite value (PSNR of identical frames) makes the mean infinite; the interval is then (inf, inf) when every
    value is infinite and undefined otherwise, rather than a misleading finite number.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer ≥ 1, got {n_boot!r}")
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    if x.size == 0:
        return Estimate(None, None, None, 0)
    mean = float(x.mean())
    if not np.isfinite(x).all():
        both = mean if np.isinf(x).all() else None
        return Estimate(mean, both, both, int(x.size))
    if x.size == 1:
        return Estimate(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(mean, float(lo), float(hi), int(x.size))


def json_number(value: float | None):
    """JSON has no inf/nan: write them as strings so every JSON reader (browsers included) accepts the file."""
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value
