"""ArcFace: the 112x112 template, 5-point similarity alignment, and the ONNX embedder (insightface buffalo_l's
``w600k_r50.onnx``). Used by curation's identity step and by the CSIM / AED metrics.

Alignment is insightface's ``norm_crop``: a least-squares similarity transform (Umeyama, no reflection) maps the
five points onto the template, and the face is warped bilinearly with a black border. The network input is RGB
(x − 127.5) / 127.5, NCHW; embeddings are returned unit-normalised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import weights
from ..errors import MediaError, WeightsError, require
from .buffalo import BUFFALO_ENTRY, BUFFALO_FILES, buffalo_dir

# insightface arcface_dst for a 112x112 crop, in five-point order (see talkbench.faces.points).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama, no reflection) mapping src points onto dst; returns a 2×3 matrix."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s.var(0).sum()
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_arcface(image: np.ndarray, landmarks5, size: int = 112) -> np.ndarray:
    """Warp a face to the ArcFace template (size 112, or a multiple of it) from its five points."""
    import cv2

    template = ARCFACE_TEMPLATE * (size / 112.0)
    m = similarity_transform(np.asarray(landmarks5, np.float64).reshape(5, 2), template)
    return cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)


def find_recognition_onnx(path: Path) -> Path:
    """The recognition model of a pack folder: w600k_r50.onnx, else the ONNX with a square ≥112 input and 1 output."""
    if path.is_file():
        return path
    if (path / BUFFALO_FILES["recognition"]).is_file():
        return path / BUFFALO_FILES["recognition"]
    for f in sorted(path.rglob("*.onnx")):
        (inp, *_), outs = weights.onnx_io(f)
        if len(outs) == 1 and len(inp) == 4 and inp[2] == inp[3] and (inp[2] or 0) >= 112:
            return f
    raise WeightsError(f"{path}: no ArcFace recognition model found (expected an ONNX with a square ≥112 input and "
                       "one embedding output, such as w600k_r50.onnx)")


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


class ArcFace:
    """ArcFace embeddings through onnxruntime: the installed buffalo_l pack by default, or a given ONNX / folder."""

    backend = "arcface"

    def __init__(self, model_path: str | Path | None = None):
        require("onnxruntime", "pip install onnxruntime")
        self.path = find_recognition_onnx(Path(model_path) if model_path is not None else buffalo_dir())
        self.model = f"{BUFFALO_ENTRY}/{self.path.name}"
        self.session = weights.onnx_session(self.path)
        self.input_name = self.session.get_inputs()[0].name
        shape = self.session.get_inputs()[0].shape
        self.size = int(shape[2]) if isinstance(shape[2], int) else 112

    def embed_aligned(self, faces: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) uint8 RGB aligned faces -> (N, 512) unit embeddings (float64)."""
        x = (faces.astype(np.float32) - 127.5) / 127.5
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return _unit(self.session.run(None, {self.input_name: x})[0].astype(np.float64))

    def embed(self, image: np.ndarray, box=None, landmarks5=None) -> np.ndarray:
        """One face of an RGB image, aligned from its five points -> (512,) unit embedding (``box`` is unused)."""
        if landmarks5 is None:
            raise MediaError("ArcFace needs 5 landmarks per face (eyes, nose, mouth corners); the sample has none")
        return self.embed_aligned(align_arcface(image, landmarks5, self.size)[None])[0]
