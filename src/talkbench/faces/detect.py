"""Face detection backends: MediaPipe (offline default; its models ship in the 0.10.21 wheel) and insightface
(SCRFD det_10g + 1k3d68 3-D landmarks from the ``buffalo_l`` pack installed through the weights registry).

Two ways in:

- per face, for curation's tracks: ``BACKENDS[name]().detect(frame)`` gives ``Detection`` objects with a box, a
  score, the five points and the head pose (``talkbench.faces.pose``, the same estimator for both backends);
- per frame, for the metrics: ``detect_boxes`` (largest face box per frame), ``mesh_landmarks`` (468 mesh points of
  one face per frame) and ``FivePointDetector`` (the five points per frame: SCRFD when installed, else the mesh).
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

import numpy as np

from .. import weights
from ..errors import MissingDependencyError, WeightsError, require
from .buffalo import BUFFALO_FILES, buffalo_dir
from .points import IBUG_PAIRS, IBUG_UP, five_points_from_mesh
from .pose import pose_from_points

MESH_CROP = 256  # face-mesh input crop side (the mesh model itself runs at 192)
MESH_ROI_SCALE = 1.6  # crop side / detector box side, as MediaPipe's own detection → landmark ROI (≈1.5)
MEDIAPIPE_INSTALL = "pip install mediapipe==0.10.21"


def require_mediapipe():
    try:
        import mediapipe as mp
    except ImportError as exc:
        raise MissingDependencyError(f"mediapipe is not installed ({exc}); install it with: "
                                     f"{MEDIAPIPE_INSTALL}") from exc
    if not hasattr(mp, "solutions"):
        raise MissingDependencyError(f"mediapipe {getattr(mp, '__version__', '?')} has no legacy solutions "
                                     f"(models ship only up to 0.10.21); install it with: {MEDIAPIPE_INSTALL}")
    return mp


@dataclass
class Detection:
    box: list[float]  # x0, y0, x1, y1 in source pixels
    score: float
    landmarks5: list[list[float]]  # five points in ArcFace order (talkbench.faces.points)
    yaw: float
    pitch: float
    roll: float
    sharpness: float | None = None  # filled by curation's FaceStep from the frame it was found in

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


# ----------------------------------------------------------------------------------------------- per-face backends


class MediaPipeBackend:
    """BlazeFace (full range) boxes, then the face mesh on a roll-corrected crop of each box for landmarks + pose."""

    name = "mediapipe"
    model = "blazeface_full_range_sparse+face_mesh_468"

    def __init__(self, min_confidence: float = 0.5):
        self.min_confidence = min_confidence
        mp = require_mediapipe()
        self._detector = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                                   min_detection_confidence=min_confidence)
        # static_image_mode: every crop is a new image (no tracking state leaks between faces or shots).
        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                     refine_landmarks=False, min_detection_confidence=0.3)
        self.stats = {"mesh_failed": 0}

    def close(self) -> None:
        self._detector.close()
        self._mesh.close()

    def boxes(self, frame: np.ndarray) -> list[tuple[list[float], float, np.ndarray]]:
        """[(box xyxy, score, (6, 2) keypoints)] from the detector alone (the 'detect' stage)."""
        h, w = frame.shape[:2]
        result = self._detector.process(frame)
        out = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            box = [rb.xmin * w, rb.ymin * h, (rb.xmin + rb.width) * w, (rb.ymin + rb.height) * h]
            kps = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints])
            out.append((box, float(det.score[0]), kps))
        return out

    def landmarks(self, frame: np.ndarray, box: list[float], kps: np.ndarray) -> np.ndarray | None:
        """(468, 3) mesh points in frame pixels (z in the same scale), or None when the mesh finds no face."""
        import cv2

        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = MESH_ROI_SCALE * max(box[2] - box[0], box[3] - box[1])
        # BlazeFace keypoints 0/1 are the subject's right/left eye: rotate the crop so the eyes are level (as
        # MediaPipe's own detection-to-ROI step does), which keeps the mesh working on strongly rolled heads.
        (rx, ry), (lx, ly) = kps[0], kps[1]
        roll = math.degrees(math.atan2(-(ly - ry), lx - rx))
        mat = cv2.getRotationMatrix2D((cx, cy), -roll, MESH_CROP / side)
        mat[:, 2] += (MESH_CROP / 2 - cx, MESH_CROP / 2 - cy)
        crop = cv2.warpAffine(frame, mat, (MESH_CROP, MESH_CROP), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            self.stats["mesh_failed"] += 1
            return None
        pts = np.array([[p.x, p.y, p.z] for p in result.multi_face_landmarks[0].landmark]) * MESH_CROP
        inv = cv2.invertAffineTransform(mat)
        xy = pts[:, :2] @ inv[:, :2].T + inv[:, 2]
        z = pts[:, 2] * side / MESH_CROP
        return np.column_stack([xy, z])

    def detect(self, frame: np.ndarray) -> list[Detection]:
        out = []
        for box, score, kps in self.boxes(frame):
            pts = self.landmarks(frame, box, kps)
            if pts is None:
                continue  # a box the mesh cannot fit is not a usable face (profile, occluded, false positive)
            yaw, pitch, roll = pose_from_points(pts)
            out.append(Detection(box, score, five_points_from_mesh(pts).tolist(), yaw, pitch, roll))
        return out


class InsightFaceBackend:
    """SCRFD (det_10g) + 1k3d68 3-D landmarks from the ``buffalo_l`` pack installed via the weights registry."""

    name = "insightface"
    model = "buffalo_l:det_10g+1k3d68"

    def __init__(self, min_confidence: float = 0.5, pack_dir: str | None = None):
        self.min_confidence = min_confidence
        pack_dir = str(pack_dir or buffalo_dir())
        insightface = require("insightface.app", "pip install --no-deps insightface onnxruntime")
        self._app = insightface.FaceAnalysis(name=pack_dir, root=pack_dir,
                                             allowed_modules=["detection", "landmark_3d_68"],
                                             providers=["CPUExecutionProvider"])
        if "landmark_3d_68" not in self._app.models:
            # Without 3-D landmarks there is no pose, and the pose filter would pass faces it never measured.
            raise WeightsError(f"the insightface pack in {pack_dir} has no 3-D landmark model (1k3d68.onnx, "
                               f"found tasks {sorted(self._app.models)}); install the full buffalo_l pack")
        self._app.prepare(ctx_id=-1, det_thresh=min_confidence, det_size=(640, 640))
        self.stats = {}

    def close(self) -> None:
        pass

    def detect(self, frame: np.ndarray) -> list[Detection]:
        out = []
        for face in self._app.get(frame[:, :, ::-1].copy()):  # insightface expects BGR
            pts = getattr(face, "landmark_3d_68", None)
            if pts is None:
                continue
            # 1k3d68 gives x, y in image pixels and a depth in the same scale, like the mesh; the same geometric
            # estimate applies. Its depth sign is taken to match the mesh's (not verified: no pack offline).
            yaw, pitch, roll = pose_from_points(pts, IBUG_PAIRS, IBUG_UP)
            out.append(Detection([float(v) for v in face.bbox[:4]], float(face.det_score),
                                 np.asarray(face.kps, float).tolist(), yaw, pitch, roll))
        return out


BACKENDS = {"mediapipe": MediaPipeBackend, "insightface": InsightFaceBackend}


def make_backend(name: str, min_confidence: float = 0.5):
    if name not in BACKENDS:
        raise ValueError(f"unknown face backend {name!r}; choose from {sorted(BACKENDS)}")
    return BACKENDS[name](min_confidence=min_confidence)


# ----------------------------------------------------------------------------------------------- per-frame helpers


@dataclass
class FaceBoxes:
    boxes: np.ndarray  # (T, 4) x1, y1, x2, y2 in pixels; NaN rows where nothing was found
    detector: str

    @property
    def failure_rate(self) -> float:
        return float(np.isnan(self.boxes[:, 0]).mean()) if len(self.boxes) else 1.0


def detect_boxes(frames: np.ndarray, min_confidence: float = 0.5) -> FaceBoxes:
    """Largest face per frame with MediaPipe face detection (short-range model)."""
    mp = require_mediapipe()
    t, h, w = frames.shape[:3]
    boxes = np.full((t, 4), np.nan)
    with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=min_confidence) as det:
        for i, frame in enumerate(frames):
            result = det.process(np.ascontiguousarray(frame))
            best = None
            for d in result.detections or []:
                b = d.location_data.relative_bounding_box
                box = np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
                if best is None or (box[2] - box[0]) > (best[2] - best[0]):
                    best = box
            if best is not None:
                boxes[i] = best
    return FaceBoxes(boxes, "mediapipe-face-detection-short")


def mesh_landmarks(frames: np.ndarray) -> np.ndarray:
    """(T, 468, 3) Face Mesh landmarks of one face per frame in pixels (x, y) and mesh depth z (scaled by width,
    the scale of x); NaN where no face."""
    mp = require_mediapipe()
    t, h, w = frames.shape[:3]
    out = np.full((t, 468, 3), np.nan, np.float64)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False) as mesh:
        for i, frame in enumerate(frames):
            result = mesh.process(np.ascontiguousarray(frame))
            if result.multi_face_landmarks:
                lm = result.multi_face_landmarks[0].landmark
                out[i] = [(p.x * w, p.y * h, p.z * w) for p in lm]
    return out


FIVE_POINT_BACKENDS = ("mediapipe", "scrfd")


class FivePointDetector:
    """Five facial points per image: SCRFD (buffalo_l) when installed, else MediaPipe Face Mesh."""

    def __init__(self, backend: str = "auto"):
        if backend == "auto":
            has_insightface = importlib.util.find_spec("insightface") is not None
            backend = "scrfd" if weights.is_installed("buffalo_l") and has_insightface else "mediapipe"
        if backend not in FIVE_POINT_BACKENDS:
            raise ValueError(f"unknown face detector {backend!r}; choose from {sorted(FIVE_POINT_BACKENDS)}")
        self.backend = backend
        self._scrfd = None
        if backend == "scrfd":
            model_zoo = require("insightface.model_zoo", "pip install insightface")
            self._scrfd = model_zoo.get_model(str(buffalo_dir() / BUFFALO_FILES["detection"]),
                                              providers=["CPUExecutionProvider"])
            self._scrfd.prepare(ctx_id=-1, input_size=(640, 640), det_thresh=0.5)

    @property
    def name(self) -> str:
        return "scrfd-det_10g" if self.backend == "scrfd" else "mediapipe-face-mesh"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB -> (T, 5, 2), NaN where no face was found."""
        if self.backend == "mediapipe":
            return five_points_from_mesh(mesh_landmarks(frames))
        out = np.full((len(frames), 5, 2), np.nan)
        for i, frame in enumerate(frames):
            _, kpss = self._scrfd.detect(np.ascontiguousarray(frame[:, :, ::-1]), max_num=1)  # SCRFD takes BGR
            if kpss is not None and len(kpss):
                out[i] = kpss[0]
        return out
