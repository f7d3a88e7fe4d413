"""CSIM and AED: ArcFace (insightface buffalo_l ``w600k_r50.onnx``) identity embeddings through onnxruntime.

The embedder, the alignment and the five-point detector are ``talkbench.faces``' (shared with curation). Faces are
aligned by a similarity transform of five points onto the 112x112 ArcFace template; the network input is
RGB (x - 127.5) / 127.5. CSIM is the cosine between the source portrait and each generated frame, averaged per
video; frames where no face is found are left out and counted in the detection failure rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..faces.arcface import ArcFace, align_arcface
from ..faces.detect import FivePointDetector

__all__ = ["ArcFace", "Embeddings", "aed", "csim", "embed_frames"]


@dataclass
class Embeddings:
    vectors: np.ndarray  # (T, 512), NaN rows where no face was found
    detector: str

    @property
    def failure_rate(self) -> float:
        return float(np.isnan(self.vectors[:, 0]).mean()) if len(self.vectors) else 1.0


def embed_frames(frames: np.ndarray, arcface: ArcFace, detector: FivePointDetector) -> Embeddings:
    points = detector(frames)
    out = np.full((len(frames), 512), np.nan)
    found = ~np.isnan(points[:, 0, 0])
    if found.any():
        faces = np.stack([align_arcface(frames[i], points[i]) for i in np.flatnonzero(found)])
        out[found] = arcface.embed_aligned(faces)
    return Embeddings(out, detector.name)


def csim(source_emb: np.ndarray, frame_embs: np.ndarray) -> float:
    """Mean cosine between one source embedding and the frames' embeddings (NaN rows skipped)."""
    valid = frame_embs[~np.isnan(frame_embs[:, 0])]
    return float(np.mean(valid @ source_emb)) if len(valid) else float("nan")


def aed(pred_embs: np.ndarray, gt_embs: np.ndarray) -> float:
    """Average L2 distance between unit identity embeddings of paired frames (both faces found)."""
    both = ~np.isnan(pred_embs[:, 0]) & ~np.isnan(gt_embs[:, 0])
    if not both.any():
        return float("nan")
    return float(np.linalg.norm(pred_embs[both] - gt_embs[both], axis=1).mean())
