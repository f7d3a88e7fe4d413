"""Identity: one face embedding per candidate track, clustered across all videos into ``identity_id``.

Two embedding backends:

- ``arcface``: insightface's buffalo_l recognition model (w600k_r50.onnx) through onnxruntime, on faces aligned by a
  5-point similarity transform to the 112×112 ArcFace template. Used when the ``buffalo_l`` weights entry is installed.
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

from ..errors import ConfigError, MediaError, MissingDependencyError, MissingWeightsError, WeightsError, require
from ..runtime.step import Step, StepContext

# ArcFace's canonical landmark positions in a 112×112 crop: left eye, right eye, nose tip, left/right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

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
ARCFACE_ENTRY = "buffalo_l"


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
    """Warp a face to the ArcFace template (size 112, or a multiple of it) from its 5 landmarks."""
    import cv2

    template = ARCFACE_TEMPLATE * (size / 112.0)
    m = similarity_transform(np.asarray(landmarks5, np.float64).reshape(5, 2), template)
    return cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)


def _find_recognition_onnx(path: Path) -> Path:
    """The recognition model of a pack folder: w600k_r50.onnx, else the ONNX with a square ≥112 input and 1 output."""
    if path.is_file():
        return path
    if (path / "w600k_r50.onnx").is_file():
        return path / "w600k_r50.onnx"
    onnx = require("onnx", "pip install onnx")
    for f in sorted(path.rglob("*.onnx")):
        model = onnx.load(str(f), load_external_data=False)
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        if len(model.graph.output) == 1 and len(dims) == 4 and dims[2] == dims[3] and dims[2] >= 112:
            return f
    raise WeightsError(f"{path}: no ArcFace recognition model found (expected an ONNX with a square ≥112 input and "
                       "one embedding output, such as w600k_r50.onnx)")


class ArcFaceEmbedder:
    """insightface ArcFace (buffalo_l recognition model) through onnxruntime on 5-point aligned 112×112 RGB faces."""

    backend = "arcface"

    def __init__(self, model_path: str | Path | None = None):
        ort = require("onnxruntime", "pip install onnxruntime")
        if model_path is None:
            from ..metrics import weights  # written in parallel; imported lazily so dlib works without it

            if not weights.is_installed(ARCFACE_ENTRY):
                raise MissingWeightsError(f"weights entry {ARCFACE_ENTRY!r} is not installed; install it with: "
                                          f"talkbench weights fetch {ARCFACE_ENTRY}")
            # The entry is the pack's zip; the registry extracts it once and returns the folder.
            model_path = weights.pack_dir(ARCFACE_ENTRY)
        self.path = _find_recognition_onnx(Path(model_path))
        self.model = f"{ARCFACE_ENTRY}/{self.path.name}"
        self._session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        shape = self._session.get_inputs()[0].shape
        self.size = int(shape[2]) if isinstance(shape[2], int) else 112

    def embed(self, image: np.ndarray, box, landmarks5=None) -> np.ndarray:
        if landmarks5 is None:
            raise MediaError("ArcFace needs 5 landmarks per face (eyes, nose, mouth corners); the sample has none")
        face = align_arcface(image, landmarks5, self.size).astype(np.float32)
        x = ((face - 127.5) / 127.5).transpose(2, 0, 1)[None]  # (1, 3, 112, 112) RGB
        out = self._session.run(None, {self._input: np.ascontiguousarray(x)})[0]
        return _unit(out[0])


def arcface_installed() -> bool:
    try:
        from ..metrics import weights

        return bool(weights.is_installed(ARCFACE_ENTRY))
    except Exception:  # noqa: BLE001 - the registry may be absent or broken; auto then means dlib
        return False


def resolve_backend(name: str) -> str:
    if name == "auto":
        return "arcface" if arcface_installed() else "dlib"
    if name not in BACKENDS:
        raise ValueError(f"unknown identity backend {name!r}; choose from {sorted([*BACKENDS, 'auto'])}")
    return name


def make_embedder(name: str):
    backend = resolve_backend(name)
    return ArcFaceEmbedder() if backend == "arcface" else DlibEmbedder()


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
            self._lazy_embedder = ArcFaceEmbedder() if self.backend == "arcface" else DlibEmbedder()
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
