"""Cache of the ground-truth side's Gaussian feature statistics (FID, clean-FID, FVD).

Every method benched on the same clips compares against the same reference statistics, so they are computed
once and stored as ``npz`` (never pickle) under the run's cache folder or ``$TALKBENCH_HOME/cache/reference_stats``.
A file is keyed by everything that changes the numbers: the manifest's sha, the split, the set of clip ids, the
protocol digest (which names the feature weights and preprocessing) and the metric. The file name is the key's
digest, and the key is stored inside too and compared on read, so a changed key part is a miss, never a stale
hit. Writes are atomic (temporary file + ``os.replace``). A file that fails validation (unreadable, wrong
arrays, shapes or dtypes, non-finite values, another key) is reported, removed and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

STAT_DIMS = {"fid": 2048, "fid_clean": 2048, "fvd": 400}  # feature sizes of the set-level metrics


def clip_set_digest(clip_ids) -> str:
    """Order-free digest of a set of clip ids (sha256 of the sorted, newline-joined ids)."""
    ids = sorted(set(map(str, clip_ids)))
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


@dataclass(frozen=True)
class StatsKey:
    manifest_sha: str
    split: str
    clip_set: str  # clip_set_digest(...) of the reference clips
    protocol_digest: str
    metric: str

    def __post_init__(self):
        if self.metric not in STAT_DIMS:
            raise ValueError(f"unknown set-level metric {self.metric!r}; choose from {sorted(STAT_DIMS)}")
        for name, value in asdict(self).items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"StatsKey.{name} must be a non-empty string, found {value!r}")

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


@dataclass
class ReferenceStats:
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64
    n: int  # samples behind the statistics


@dataclass
class Lookup:
    stats: ReferenceStats | None
    status: str  # "hit", "miss" or "corrupt"
    reason: str | None = None


def default_cache_dir(run_cache: str | os.PathLike | None = None) -> Path:
    if run_cache is not None:
        return Path(run_cache) / "reference_stats"
    base = os.environ.get("TALKBENCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "talkbench")
    return Path(base) / "cache" / "reference_stats"


class ReferenceStatsCache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: StatsKey) -> Path:
        return self.root / f"{key.metric}-{key.digest()[:24]}.npz"

    def load(self, key: StatsKey) -> Lookup:
        path = self.path(key)
        if not path.exists():
            return Lookup(None, "miss")
        try:
            stats = self._read_valid(path, key)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            reason = f"reference statistics {path.name} rejected ({exc}); recomputing them"
            log.warning(reason)
            path.unlink(missing_ok=True)
            return Lookup(None, "corrupt", reason)
        return Lookup(stats, "hit")

    @staticmethod
    def _read_valid(path: Path, key: StatsKey) -> ReferenceStats:
        dim = STAT_DIMS[key.metric]
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            if names != {"mu", "sigma", "n", "key"}:
                raise ValueError(f"arrays {sorted(names)}, expected ['key', 'mu', 'n', 'sigma']")
            stored = json.loads(str(z["key"]))
            if stored != asdict(key):
                raise ValueError("stored key differs from the requested one")
            mu, sigma, n = z["mu"], z["sigma"], z["n"]
        if mu.dtype != np.float64 or sigma.dtype != np.float64 or mu.shape != (dim,) or sigma.shape != (dim, dim):
            raise ValueError(f"mu {mu.dtype}{mu.shape}, sigma {sigma.dtype}{sigma.shape}; expected float64 ({dim},) "
                             f"and ({dim}, {dim})")
        if n.shape != () or not np.issubdtype(n.dtype, np.integer) or int(n) < 2:
            raise ValueError(f"sample count {n!r} is not an integer >= 2")
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise ValueError("non-finite values")
        return ReferenceStats(mu, sigma, int(n))

    def save(self, key: StatsKey, stats: ReferenceStats) -> Path:
        dim = STAT_DIMS[key.metric]
        mu, sigma = np.asarray(stats.mu, np.float64), np.asarray(stats.sigma, np.float64)
        if mu.shape != (dim,) or sigma.shape != (dim, dim) or int(stats.n) < 2:
            raise ValueError(f"{key.metric} statistics must be ({dim},), ({dim}, {dim}) and n >= 2, found "
                             f"{mu.shape}, {sigma.shape}, n={stats.n}")
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{path.stem}.", suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, mu=mu, sigma=sigma, n=np.int64(stats.n), key=np.array(json.dumps(asdict(key))))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def reference_clip_set(items) -> str:
    """Clip-set digest of a bench run's ground-truth side from ``(clip_id, first_scored_frame, generated_frames)``.

    The ground-truth frames that enter FID/clean-FID are ``clip[first:n]`` (the reference is cut to the generated
    length), and FVD skips a clip, on both sides, when either side has fewer than ``fvd_frames`` frames; both follow
    from these three numbers and the clip itself (fixed by the manifest's sha), so equal digests mean equal
    real-side samples even when a method generates shorter videos than another."""
    return clip_set_digest(f"{clip_id}:{int(first)}:{int(n)}" for clip_id, first, n in items)


def reference_keys(manifest_sha: str, split: str, clip_set: str, protocol_digest: str, metrics) -> dict[str, StatsKey]:
    """One key per set-level metric among ``metrics`` (the others have no reference statistics)."""
    return {m: StatsKey(manifest_sha, split, clip_set, protocol_digest, m) for m in metrics if m in STAT_DIMS}
