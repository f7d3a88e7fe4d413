"""Inference with a trained motion model: reenactment (streaming, batched) and motion-latent extraction.

``ReenactModel.reenact`` is the single code path used by ``talkbench generate reenact`` and by the bench method
``ours`` (self- and cross-reenactment). Driving is relative (LIA): the source's own motion code plus the driver's
change since its first frame, so the source keeps its pose when the driver's first frame differs from it.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from ..errors import ConfigError, MediaError
from ..manifests.io import read_table, to_table, write_table
from . import checkpoints
from .motion import MotionConfig, MotionGenerator


def frames_to_tensor(frames: np.ndarray, size: int, device: torch.device) -> torch.Tensor:
    """(n, H, W, 3) uint8 RGB → (n, 3, size, size) float in [-1, 1] (antialiased bilinear resize when needed)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(f"expected uint8 RGB frames (n, H, W, 3), found {frames.dtype} {frames.shape}")
    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).to(device).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x / 127.5 - 1


def tensor_to_frames(x: torch.Tensor, hw: tuple[int, int]) -> np.ndarray:
    """(n, 3, S, S) in [-1, 1] → (n, H, W, 3) uint8 at the requested size."""
    x = x.float()
    if tuple(x.shape[-2:]) != tuple(hw):
        x = F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _chunks(frames: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Regroup single frames (H, W, 3) or chunks (n, H, W, 3) into arrays of at most batch_size frames."""
    pending: list[np.ndarray] = []
    count = 0
    for item in frames:
        item = np.asarray(item)
        item = item[None] if item.ndim == 3 else item
        while len(item):
            take = item[: batch_size - count]
            pending.append(take)
            count += len(take)
            item = item[len(take):]
            if count == batch_size:
                yield np.concatenate(pending)
                pending, count = [], 0
    if pending:
        yield np.concatenate(pending)


class ReenactModel:
    """A motion generator ready for inference (EMA weights by default), on CPU or GPU."""

    def __init__(self, gen: MotionGenerator, device: str | torch.device = "cpu", meta: dict | None = None):
        self.device = torch.device(device)
        self.gen = gen.to(self.device).eval().requires_grad_(False)
        self.cfg: MotionConfig = gen.cfg
        self.size: int = self.cfg.size
        self.meta = meta or {}

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", use_ema: bool = True) -> "ReenactModel":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} was requested but torch sees no CUDA device")
        ckpt = checkpoints.load(path, map_location="cpu")
        if ckpt.get("cfg", {}).get("family") != "motion":
            raise checkpoints.CheckpointError(f"{path}: not a motion-model checkpoint "
                                              f"(family {ckpt.get('cfg', {}).get('family')!r})")
        gen = MotionGenerator(MotionConfig.from_dict(ckpt["cfg"]["model"]))
        gen.load_state_dict(ckpt["ema" if use_ema else "model"])
        meta = {"step": int(ckpt["step"]), "manifest_sha": ckpt["manifest_sha"], "perceptual": ckpt["cfg"].get(
            "perceptual"), "checkpoint_sha": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
        return cls(gen, device, meta)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def encode(self, frames: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Motion codes (T, motion_dim) and identity embeddings (T, style_dim) of uint8 frames (T, H, W, 3)."""
        alphas, ids = [], []
        for chunk in _chunks([frames], batch_size):
            with self._autocast():
                enc = self.gen.encoder(frames_to_tensor(chunk, self.size, self.device))
            alphas.append(enc.alpha.float().cpu())
            ids.append(enc.identity.float().cpu())
        return {"motion": torch.cat(alphas).numpy(), "identity": torch.cat(ids).numpy()}

    @torch.inference_mode()
    def reenact(self, source: np.ndarray, driver_frames: Iterable[np.ndarray],
                batch_size: int = 16) -> Iterator[np.ndarray]:
        """source (H, W, 3) uint8 RGB; driver frames (H, W, 3) or chunks (n, H, W, 3) uint8.

        Yields (H, W, 3) uint8 frames at the source's size, one per driver frame, processing batch_size driver
        frames at a time, so memory stays constant however long the driver is.
        """
        source = np.asarray(source)
        if source.ndim != 3:
            raise MediaError(f"source must be one (H, W, 3) frame, found shape {source.shape}")
        hw = source.shape[:2]
        with self._autocast():
            src = self.gen.encoder(frames_to_tensor(source[None], self.size, self.device))
        # the renderer warps the source at its own size (flow and residual are upsampled), not the model's
        full = torch.from_numpy(np.require(source, np.uint8, ["C"])).to(self.device).permute(2, 0, 1)[None] / 127.5 - 1
        first = None
        for chunk in _chunks(driver_frames, batch_size):
            n = len(chunk)
            with self._autocast():
                alpha = self.gen.encoder(frames_to_tensor(chunk, self.size, self.device)).alpha.float()  # (n, 20)
                if first is None:
                    first = alpha[:1]
                alpha = MotionGenerator.relative_alpha(src.alpha.float(), alpha, first)
                feats = [f.expand(n, -1, -1, -1) for f in src.feats[:-1] + [full]]
                out = self.gen.render(src.w.expand(n, -1), alpha, feats, src.alpha.expand(n, -1))  # (n, 3, S, S)
            yield from tensor_to_frames(out, hw)


# ----------------------------------------------------------------------------------------------------------------
# Motion-latent extraction (input of the audio-to-motion model)
# ----------------------------------------------------------------------------------------------------------------

def extract_motion(manifest: str | Path, checkpoint: str | Path, out: str | Path, device: str = "cpu",
                   batch_size: int = 64, split: str | None = None) -> pa.Table:
    """Per-clip motion latents (T × motion_dim) and identity codes for every clip of a manifest, to Parquet."""
    from .data import decode_clip

    model = ReenactModel.from_checkpoint(checkpoint, device=device)
    manifest = Path(manifest)
    rows = read_table(manifest, "clips").to_pylist()
    if split is not None:
        rows = [r for r in rows if r.get("split") == split]
    records = []
    for row in sorted(rows, key=lambda r: r["clip_id"]):
        frames = decode_clip(row, manifest.parent, model.size)
        codes = model.encode(frames, batch_size)
        records.append({
            "clip_id": row["clip_id"], "identity_id": row.get("identity_id"), "split": row.get("split"),
            "fps": row.get("fps"), "n_frames": len(frames), "motion": codes["motion"].tolist(),
            "identity": codes["identity"].mean(0).tolist(), "checkpoint_sha": model.meta["checkpoint_sha"],
            "checkpoint_step": model.meta["step"]})
    write_table(records, out, "motion_latents")
    return to_table(records, "motion_latents")


def read_motion_latents(path: str | Path) -> pa.Table:
    return read_table(path, "motion_latents")
