"""Face detection and landmarks shared by the face metrics (Sync crops, CSIM, Diversity, AKD).

Offline default: MediaPipe (face detection for boxes, Face Mesh for 468 landmarks, from which the five ArcFace
points are taken). When the insightface buffalo_l pack is installed, SCRFD (det_10g.onnx) gives the five points,
as insightface does. Every result says which detector made it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import require

# ArcFace 112x112 template (insightface arcface_dst): left eye, right eye, nose, left mouth, right mouth (image sides).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)

# Face Mesh indices: eye corners (averaged into eye centres), nose tip, mouth corners; chin for head pose.
MESH_EYE_L, MESH_EYE_R, MESH_NOSE, MESH_MOUTH_L, MESH_MOUTH_R, MESH_CHIN = (33, 133), (362, 263), 1, 61, 291, 152
# A generic 3D face (nose tip, chin, eye outer corners, mouth corners) for solvePnP head pose.
_POSE_MODEL = np.array([[0, 0, 0], [0, -330, -65], [-225, 170, -135], [225, 170, -135], [-150, -150, -125],
                        [150, -150, -125]], np.float64)


def _mediapipe():
    return require("mediapipe", "pip install mediapipe==0.10.21")


@dataclass
class FaceBoxes:
    boxes: np.ndarray  # (T, 4) x1, y1, x2, y2 in pixels; NaN rows where nothing was found
    detector: str

    @property
    def failure_rate(self) -> float:
        return float(np.isnan(self.boxes[:, 0]).mean()) if len(self.boxes) else 1.0


def detect_boxes(frames: np.ndarray, min_confidence: float = 0.5) -> FaceBoxes:
    """Largest face per frame with MediaPipe face detection (short-range model)."""
    mp = _mediapipe()
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
    """(T, 468, 3) Face Mesh landmarks in pixels (x, y) and mesh depth z (scaled by width); NaN where no face."""
    mp = _mediapipe()
    t, h, w = frames.shape[:3]
    out = np.full((t, 468, 3), np.nan, np.float64)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False) as mesh:
        for i, frame in enumerate(frames):
            result = mesh.process(np.ascontiguousarray(frame))
            if result.multi_face_landmarks:
                lm = result.multi_face_landmarks[0].landmark
                out[i] = [(p.x * w, p.y * h, p.z * w) for p in lm]
    return out


def five_points_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """(T, 468, 3) -> (T, 5, 2) ArcFace-order points (NaN rows stay NaN)."""
    eye_l = mesh[:, list(MESH_EYE_L), :2].mean(1)
    eye_r = mesh[:, list(MESH_EYE_R), :2].mean(1)
    return np.stack([eye_l, eye_r, mesh[:, MESH_NOSE, :2], mesh[:, MESH_MOUTH_L, :2], mesh[:, MESH_MOUTH_R, :2]], 1)


class FivePointDetector:
    """Five facial points per image: SCRFD (buffalo_l) when installed, else MediaPipe Face Mesh."""

    def __init__(self, backend: str = "auto"):
        from . import weights

        if backend == "auto":
            backend = "scrfd" if weights.is_installed("buffalo_l") and _has_insightface() else "mediapipe"
        if backend not in ("scrfd", "mediapipe"):
            raise ValueError(f"unknown face detector {backend!r}; choose from ['mediapipe', 'scrfd']")
        self.backend = backend
        self._scrfd = None
        if backend == "scrfd":
            model_zoo = require("insightface.model_zoo", "pip install insightface")
            self._scrfd = model_zoo.get_model(str(weights.pack_dir("buffalo_l") / weights.BUFFALO_FILES["detection"]),
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
            bboxes, kpss = self._scrfd.detect(np.ascontiguousarray(frame[:, :, ::-1]), max_num=1)  # SCRFD takes BGR
            if kpss is not None and len(kpss):
                out[i] = kpss[0]
        return out


def _has_insightface() -> bool:
    import importlib.util

    return importlib.util.find_spec("insightface") is not None


def align_arcface(image: np.ndarray, points: np.ndarray, size: int = 112) -> np.ndarray:
    """Similarity-warp an RGB image so its five points land on the ArcFace template (insightface norm_crop)."""
    import cv2
    from skimage.transform import SimilarityTransform

    src, dst = points.astype(np.float64), ARCFACE_TEMPLATE.astype(np.float64) * size / 112.0
    if hasattr(SimilarityTransform, "from_estimate"):  # skimage >= 0.26
        tform = SimilarityTransform.from_estimate(src, dst)
    else:
        tform = SimilarityTransform()
        tform.estimate(src, dst)
    return cv2.warpAffine(image, tform.params[:2], (size, size), borderValue=0.0)


def head_pose(mesh: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, 468, 3) -> (T, 3) yaw, pitch, roll in degrees from solvePnP on six mesh points (NaN where no face)."""
    import cv2

    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], np.float64)
    idx = [MESH_NOSE, MESH_CHIN, MESH_EYE_L[0], MESH_EYE_R[1], MESH_MOUTH_L, MESH_MOUTH_R]
    out = np.full((len(mesh), 3), np.nan)
    for i, m in enumerate(mesh):
        if np.isnan(m[0, 0]):
            continue
        ok, rvec, _ = cv2.solvePnP(_POSE_MODEL, m[idx, :2].astype(np.float64), camera, None, flags=cv2.SOLVEPNP_ITERATIVE)
        if ok:
            rot, _ = cv2.Rodrigues(rvec)
            pitch, yaw, roll = cv2.RQDecomp3x3(rot)[0]
            out[i] = (yaw, pitch, roll)
    return out
