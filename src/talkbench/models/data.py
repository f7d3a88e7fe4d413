"""Training data for the motion model: frame pairs from the clips manifest.

Each sample is drawn from its global index alone (``numpy.random.default_rng([seed, index])``), so the stream is the
same whatever the number of DataLoader workers or ranks, and resuming at step k replays exactly the batches k, k+1, …
(the sampler hands out indices ``step * global_batch + …``). Decoded clips are cached per worker (bounded LRU).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from ..errors import ConfigError, ManifestError, MediaError
from ..manifests import read_table


def manifest_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_train_clips(manifest: str | Path, clip_ids: list[str] | None = None) -> list[dict]:
    """Rows of the clips manifest used for training: split == 'train' only.

    Asking for a test-split clip by id is refused; so is a manifest with no train clips or clips without a split.
    """
    rows = read_table(manifest, "clips").to_pylist()
    if not rows:
        raise ManifestError(f"{manifest}: the clips manifest is empty")
    unsplit = [r["clip_id"] for r in rows if r.get("split") not in ("train", "test")]
    if unsplit:
        raise ManifestError(f"{manifest}: {len(unsplit)} clips have no train/test split (e.g. {unsplit[0]}); "
                            "run the curate split stage first")
    if clip_ids is not None:
        by_id = {r["clip_id"]: r for r in rows}
        unknown = [c for c in clip_ids if c not in by_id]
        if unknown:
            raise ManifestError(f"{manifest}: clip ids not in the manifest: {unknown[:3]}")
        test = [c for c in clip_ids if by_id[c]["split"] == "test"]
        if test:
            raise ManifestError(f"refusing to train on test-split clips: {test[:3]} (split='test' in {manifest})")
        rows = [by_id[c] for c in clip_ids]
    train = [r for r in rows if r["split"] == "train"]
    if not train:
        raise ManifestError(f"{manifest}: no clips with split='train' (found splits {sorted({r['split'] for r in rows})})")
    return sorted(train, key=lambda r: r["clip_id"])


def decode_clip(row: dict, root: Path, size: int) -> np.ndarray:
    """All frames of a clip as (T, size, size, 3) uint8 RGB, from its PNG frames_dir or its mp4, read as the
    benchmark protocol reads frames (talkbench.manifests.frames)."""
    from ..manifests.frames import read_video, reading_at

    frames_dir = row.get("frames_dir")
    if frames_dir and (root / frames_dir).is_dir():
        return read_video(root / frames_dir, reading_at(size)).frames
    if not row.get("path"):
        raise ManifestError(f"clip {row['clip_id']}: neither path nor frames_dir is set")
    frames = read_video(root / row["path"], reading_at(size)).frames
    if len(frames) < 2:
        raise MediaError(f"{root / row['path']}: {len(frames)} frame(s) decoded, need at least 2")
    return frames


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div(127.5).sub(1)


def augment(img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Identity-preserving augmentation for the triplet positive: colour jitter + small scale/shift/rotation."""
    b, c, s = rng.uniform(-0.2, 0.2), rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2)
    x = (img + b) * c
    gray = x.mean(0, keepdim=True)
    x = gray + (x - gray) * s
    angle, scale = np.deg2rad(rng.uniform(-8, 8)), rng.uniform(0.9, 1.1)
    tx, ty = rng.uniform(-0.08, 0.08, size=2)
    theta = torch.tensor([[np.cos(angle) / scale, -np.sin(angle) / scale, tx],
                          [np.sin(angle) / scale, np.cos(angle) / scale, ty]], dtype=torch.float32)
    grid = F.affine_grid(theta[None], (1, *x.shape), align_corners=False)
    x = F.grid_sample(x[None], grid, padding_mode="reflection", align_corners=False)[0]
    return x.clamp(-1, 1)


MOUTH_SIZE = 256  # frames are decoded at this size to find the mouth (Face Mesh misses faces at the tiny 64 px)
MOUTH_STRIDE = 3  # landmarks on every 3rd frame, linearly interpolated between (the mouth moves smoothly)


def mouth_track(row: dict, root: Path) -> np.ndarray:
    """(T, 3) float32 per frame of a clip: the inner-lip midpoint (x, y) and the inter-ocular distance, as fractions
    of the frame side, from the shared face module's Face Mesh; frames without a face are interpolated."""
    from ..faces.detect import mesh_landmarks
    from ..faces.points import MESH_LOWER_LIP, MESH_UPPER_LIP, inter_ocular

    frames = decode_clip(row, root, MOUTH_SIZE)
    picked = np.arange(0, len(frames), MOUTH_STRIDE)
    mesh = mesh_landmarks(frames[picked])
    centre = mesh[:, [MESH_UPPER_LIP, MESH_LOWER_LIP], :2].mean(1)  # (n, 2) px
    track = np.concatenate([centre, inter_ocular(mesh)[:, None]], 1) / MOUTH_SIZE  # (n, 3)
    found = ~np.isnan(track).any(1)
    if not found.any():
        raise MediaError(f"clip {row['clip_id']}: no face found, so no mouth to weight the loss with")
    idx = np.arange(len(frames))
    return np.stack([np.interp(idx, picked[found], track[found, c]) for c in range(3)], 1).astype(np.float32)


class MotionPairs(Dataset):
    """Sample i → {source, target, other, aug, label, other_label, other_is_same}.

    source/target: two frames of one clip; other: a frame of a clip of another identity (the same clip when the
    manifest has a single identity, flagged by ``other_is_same`` so the triplet loss skips it); aug: an augmented
    copy of source. Labels index ``identities`` (sorted identity_id values of the train clips). With ``mouth``, also
    ``mouth``: the target frame's mouth (``mouth_track``); with ``near`` > 0, that fraction of pairs lies within
    ``near_frames`` frames (the jaw moves at syllable rate, the head slowly).
    """

    def __init__(self, manifest: str | Path, size: int, seed: int = 0, cache_clips: int = 8,
                 clip_ids: list[str] | None = None, mouth: bool = False, near: float = 0.0, near_frames: int = 3):
        self.manifest = Path(manifest)
        self.root = self.manifest.parent
        self.rows = load_train_clips(manifest, clip_ids)
        self.size, self.seed, self.cache_clips = size, seed, cache_clips
        self.near, self.near_frames = near, near_frames
        missing = [r["clip_id"] for r in self.rows if not r.get("identity_id")]
        if missing:
            raise ManifestError(f"{manifest}: clips without identity_id (e.g. {missing[0]}); identity losses need it")
        self.identities = sorted({r["identity_id"] for r in self.rows})
        self.labels = [self.identities.index(r["identity_id"]) for r in self.rows]
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        # per clip (T, 3): mouth centre x, y and inter-ocular distance, as fractions of the frame side
        self.mouths = [mouth_track(r, self.root) for r in self.rows] if mouth else None

    def __len__(self) -> int:
        return 2 ** 31 - 1  # an endless stream; the sampler decides which indices are read

    def frames(self, k: int) -> np.ndarray:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        arr = decode_clip(self.rows[k], self.root, self.size)
        self._cache[k] = arr
        while len(self._cache) > self.cache_clips:
            self._cache.popitem(last=False)
        return arr

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, int(index)])
        k = int(rng.integers(len(self.rows)))
        clip = self.frames(k)
        i, j = rng.integers(len(clip), size=2)
        if self.near and rng.random() < self.near:  # a pair close in time: little head motion, any mouth change
            j = int(np.clip(i + rng.integers(-self.near_frames, self.near_frames + 1), 0, len(clip) - 1))
        others = [m for m, lab in enumerate(self.labels) if lab != self.labels[k]]
        m = int(others[rng.integers(len(others))]) if others else k
        other = self.frames(m)
        source = to_tensor(clip[i])
        return {
            "source": source,
            "target": to_tensor(clip[j]),
            "other": to_tensor(other[rng.integers(len(other))]),
            "aug": augment(source, rng),
            "label": torch.tensor(self.labels[k]),
            "other_label": torch.tensor(self.labels[m]),
            "other_is_same": torch.tensor(not others),
            **({"mouth": torch.from_numpy(self.mouths[k][min(int(j), len(self.mouths[k]) - 1)])}
               if self.mouths is not None else {}),
        }


class StepSampler(Sampler):
    """Batches of global indices for steps start, start+1, …: rank r of w takes its slice of each global batch."""

    def __init__(self, batch_size: int, start_step: int = 0, max_steps: int = 2 ** 31 - 1, rank: int = 0,
                 world_size: int = 1):
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        self.b, self.start, self.stop, self.rank, self.world = batch_size, start_step, max_steps, rank, world_size

    def __iter__(self):
        for step in range(self.start, self.stop):
            base = (step * self.world + self.rank) * self.b
            yield list(range(base, base + self.b))

    def __len__(self) -> int:
        return max(0, self.stop - self.start)
