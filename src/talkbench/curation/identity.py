"""Identity: one face embedding per candidate track, clustered across all videos into ``identity_id``.

Two embedding backends:

- ``arcface``: insightface's buffalo_l recognition model (w600k_r50.onnx) through onnxruntime, on faces aligned by a
  5-point similarity transform to the 112×112 ArcFace template (``talkbench.faces.arcface``, shared with the CSIM
  metric). Used when the ``buffalo_l`` weights entry is installed.
- ``dlib``: dlib's ResNet face descriptor (128-d), whose weights ship in the ``face-recognition-models`` wheel. dlib's
  own 5-point shape predictor places the landmarks inside the candidate's box; dlib's HOG detector is never used
  (it fires on non-faces such as the astronaut's mission patch).

Clustering is agglomerative (average linkage) on cosine distance, cut at a per-backend threshold; see
``DEFAULT_THRESHOLDS`` for how each threshold was chosen.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Iterable

import numpy as np

from .. import weights
from ..errors import ConfigError, MediaError, MissingDependencyError, MissingWeightsError, require
from ..faces.arcface import ArcFace
from ..faces.buffalo import BUFFALO_ENTRY
from ..runtime.step import Step, StepContext

# Cosine-distance cut for average-linkage clustering, per backend.
#
# dlib: measured with `benchmarks/identity_accuracy.py --sweep` on 8 real people (the six faces of insightface's
#   t1.jpg, skimage's astronaut, Tom_Hanks_54745.png), each in 9 views (original, 0.5× and 1.6× scale, a shifted
#   box, ±12° rotation, blur σ=2, JPEG q=20, darker lighting). Same-person cosine distances reached at most 0.037;
#   the closest two different people (two t1 faces) were 0.064 apart. Average linkage gives exactly the 8 people
#   for every cut in 0.04–0.09 (0.10 merges two people, 0.03 splits one). 0.07 is the middle of that range, and it
#   matches dlib's own rule (Euclidean 0.6 on raw descriptors, whose measured norms are 1.35–1.6:
#   0.6² / (2·1.5²) ≈ 0.08 cosine distance). Video frames vary more than these views (expression, yaw), so a split
#   identity is the expected error; a split only costs clips, while a merge of two people would leak one of them
#   across train and test.
# arcface: NOT measured here (the real buffalo_l weights cannot be fetched on these machines). 0.6 cosine distance
#   (similarity 0.4) is a common verification operating point for ArcFace r50 embeddings; once buffalo_l is
#   installed, rerun the benchmark and set ``identity.threshold`` (or update this value) from its sweep.
DEFAULT_THRESHOLDS = {"dlib": 0.07, "arcface": 0.6}

BACKENDS = ("arcface", "dlib")


# ----------------------------------------------------------------------------------------------------------------
# Embedders
# ----------------------------------------------------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).ravel()
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def dlib_models_dir() -> Path:
    """The face-recognition-models folder, found without importing it (its __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("face-recognition-models is not installed; install it with: "
                                     "pip install face-recognition-models==0.3.0")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibEmbedder:
    """dlib ResNet descriptor on the candidate's box (128-d, unit-normalised)."""

    backend = "dlib"
    model = "dlib_face_recognition_resnet_model_v1"

    def __init__(self):
        self._dlib = require("dlib", "pip install dlib-bin")
        folder = dlib_models_dir()
        predictor = folder / "shape_predictor_5_face_landmarks.dat"
        resnet = folder / "dlib_face_recognition_resnet_model_v1.dat"
        for f in (predictor, resnet):
            if not f.exists():
                raise MissingWeightsError(f"{f} is missing from face-recognition-models; reinstall it with: "
                                          "pip install --force-reinstall face-recognition-models==0.3.0")
        self._predictor = self._dlib.shape_predictor(str(predictor))
        self._net = self._dlib.face_recognition_model_v1(str(resnet))

    def embed(self, image: np.ndarray, box, landmarks5=None) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        rect = self._dlib.rectangle(x0, y0, x1, y1)
        image = np.ascontiguousarray(image, dtype=np.uint8)
        shape = self._predictor(image, rect)
        return _unit(np.array(self._net.compute_face_descriptor(image, shape)))


def arcface_installed() -> bool:
    return weights.is_installed(BUFFALO_ENTRY)


def resolve_backend(name: str) -> str:
    if name == "auto":
        return "arcface" if arcface_installed() else "dlib"
    if name not in BACKENDS:
        raise ValueError(f"unknown identity backend {name!r}; choose from {sorted([*BACKENDS, 'auto'])}")
    return name


def make_embedder(name: str):
    backend = resolve_backend(name)
    return ArcFace() if backend == "arcface" else DlibEmbedder()


def threshold_for(backend: str, configured: float | None) -> float:
    if configured is not None:
        if not 0.0 < configured < 2.0:
            raise ConfigError(f"identity.threshold must be a cosine distance in (0, 2), found {configured}")
        return float(configured)
    return DEFAULT_THRESHOLDS[backend]


# ----------------------------------------------------------------------------------------------------------------
# Per-candidate embedding step
# ----------------------------------------------------------------------------------------------------------------


def pick_samples(samples: list[dict], n: int) -> list[dict]:
    """Up to n samples spread evenly over the track (first, last and between), in frame order."""
    ordered = sorted(samples, key=lambda s: s["frame"])
    if len(ordered) <= n:
        return ordered
    idx = np.unique(np.round(np.linspace(0, len(ordered) - 1, n)).astype(int))
    return [ordered[i] for i in idx]


def read_frame(path: str, frame: int, fps: float) -> np.ndarray:
    """One decoded RGB frame by index (constant frame rate)."""
    from ..media import iter_frames

    # Seek a quarter frame early: ffmpeg returns the first frame whose pts ≥ start, so rounding cannot skip one.
    start = max(0.0, (frame - 0.25) / fps)
    for chunk in iter_frames(path, start=start, duration=0.5 / fps + 1e-3, chunk=1):
        return chunk[0]
    raise MediaError(f"{path}: frame {frame} could not be decoded")


class EmbedStep(Step):
    """Candidate row → the same row plus ``embedding`` (mean of unit embeddings of a few sampled frames)."""

    def __init__(self, backend: str = "auto", n_samples: int = 3):
        self.backend = resolve_backend(backend)
        self.n_samples = n_samples

    @property
    def name(self) -> str:
        return "identity_embed"

    def _embedder(self):
        if getattr(self, "_lazy_embedder", None) is None:
            self._lazy_embedder = ArcFace() if self.backend == "arcface" else DlibEmbedder()
        return self._lazy_embedder

    def run(self, rows, rank=0, world_size=1):
        ctx = self.ctx or StepContext(self.name)
        embedder = None
        for row in rows:
            embedder = embedder or self._embedder()
            vectors = []
            for sample in pick_samples(row.get("samples") or [], self.n_samples):
                if self.backend == "arcface" and not sample.get("landmarks5"):
                    continue
                image = read_frame(row["abs_path"], int(sample["frame"]), float(row.get("fps") or 25.0))
                vectors.append(embedder.embed(image, sample["box"], sample.get("landmarks5")))
            if not vectors:
                ctx.reject(row["candidate_id"], "no_embedding", source_id=row.get("source_id"),
                                backend=self.backend)
                continue
            ctx.count("embedded")
            out = dict(row)
            out["embedding"] = [float(v) for v in _unit(np.mean(vectors, axis=0))]
            out["identity_backend"] = embedder.backend
            out["identity_model"] = embedder.model
            yield out


# ----------------------------------------------------------------------------------------------------------------
# Clustering
# ----------------------------------------------------------------------------------------------------------------


def cluster_embeddings(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """Average-linkage agglomerative clustering on cosine distance; labels 0.. in order of first appearance."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    x = np.stack([_unit(e) for e in embeddings])
    dist = np.clip(pdist(x, metric="cosine"), 0.0, 2.0)
    raw = fcluster(linkage(dist, method="average"), t=threshold, criterion="distance")
    # Renumber by first appearance so labels do not depend on scipy's internal numbering.
    mapping: dict[int, int] = {}
    return np.array([mapping.setdefault(int(c), len(mapping)) for c in raw], dtype=int)


def identity_id_for(member_ids: Iterable[str]) -> str:
    """Deterministic identity id: a short hash of its sorted member candidate ids."""
    digest = hashlib.sha256("\n".join(sorted(member_ids)).encode()).hexdigest()[:12]
    return f"id-{digest}"


def assign_identities(rows: list[dict], threshold: float, rejections: list | None = None) -> list[dict]:
    """Cluster candidate rows (sorted by candidate_id first) and add identity_id and identity_score to each.

    Rows whose embedding is NaN/inf (or all zero) are never clustered: they go to ``rejections`` as
    ``embedding_nan``/``embedding_zero`` rows, or, without a list, raise ``MediaError`` naming them.
    """
    from .clustering import cluster_scalable, reject_invalid

    rows = reject_invalid(sorted(rows, key=lambda r: r["candidate_id"]), rejections)
    if not rows:
        return []
    emb = np.stack([_unit(r["embedding"]) for r in rows])
    labels = cluster_scalable(emb, threshold)
    out = []
    for label in range(labels.max() + 1):
        members = [i for i in np.flatnonzero(labels == label)]
        centroid = _unit(emb[members].mean(0))
        ident = identity_id_for(rows[i]["candidate_id"] for i in members)
        for i in members:
            row = dict(rows[i])
            row["identity_id"] = ident
            row["identity_score"] = round(float(emb[i] @ centroid), 6)
            out.append(row)
    out.sort(key=lambda r: r["candidate_id"])
    return out
