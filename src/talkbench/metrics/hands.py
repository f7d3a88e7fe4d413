"""HKC: mean hand-keypoint confidence per frame, averaged over the video. The protocol names the detector.

- ``mediapipe-hands`` (offline default): MediaPipe Hands reports no per-keypoint confidence, so each of the two
  hand slots scores its hand's detection (handedness) confidence, 0 when that hand is not found; a frame scores
  the mean of the two slots.
- ``dwpose`` (paper-compatible, needs the ``dwpose`` weights): RTMPose whole-body on the full frame; the confidence
  of keypoint k is min(max simcc_x, max simcc_y); a frame scores the mean over the 42 hand keypoints (91..132).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import weights
from ..errors import WeightsError, require

DWPOSE_INPUT = (288, 384)  # (w, h)
DWPOSE_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
DWPOSE_STD = np.array([58.395, 57.12, 57.375], np.float32)
HAND_KEYPOINTS = slice(91, 133)


def hkc_mediapipe(frames: np.ndarray) -> np.ndarray:
    """(T,) per-frame scores in [0, 1]."""
    mp = require("mediapipe", "pip install mediapipe==0.10.21")
    scores = np.zeros(len(frames))
    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2, min_detection_confidence=0.5) as hands:
        for i, frame in enumerate(frames):
            result = hands.process(np.ascontiguousarray(frame))
            slots = {"Left": 0.0, "Right": 0.0}
            for hand in result.multi_handedness or []:
                c = hand.classification[0]
                slots[c.label] = max(slots.get(c.label, 0.0), float(c.score))
            scores[i] = (slots["Left"] + slots["Right"]) / 2
    return scores


class DWPose:
    def __init__(self, model_path=None):
        self.session = weights.onnx_session(model_path or weights.weights_path("dwpose"))
        self.input_name = self.session.get_inputs()[0].name

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        """Full-frame box padded by 1.25 to the 288:384 aspect, affine-warped, normalised; (1, 3, 384, 288)."""
        import cv2

        h, w = frame.shape[:2]
        aspect = DWPOSE_INPUT[0] / DWPOSE_INPUT[1]
        bw, bh = w * 1.25, h * 1.25
        if bw / bh > aspect:
            bh = bw / aspect
        else:
            bw = bh * aspect
        scale = DWPOSE_INPUT[0] / bw
        m = np.array([[scale, 0, DWPOSE_INPUT[0] / 2 - scale * w / 2], [0, scale, DWPOSE_INPUT[1] / 2 - scale * h / 2]])
        warped = cv2.warpAffine(frame, m, DWPOSE_INPUT, flags=cv2.INTER_LINEAR).astype(np.float32)
        return ((warped - DWPOSE_MEAN) / DWPOSE_STD).transpose(2, 0, 1)[None]

    def keypoint_scores(self, frame: np.ndarray) -> np.ndarray:
        simcc_x, simcc_y = self.session.run(None, {self.input_name: self.preprocess(frame)})
        return np.minimum(simcc_x[0].max(-1), simcc_y[0].max(-1))  # (133,)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return np.array([self.keypoint_scores(f)[HAND_KEYPOINTS].mean() for f in frames])


DWPOSE_OUTPUTS = [(133, 576), (133, 768)]  # simcc_x, simcc_y: 133 whole-body keypoints, SimCC bins (2x input)


def check_dwpose(path: Path) -> None:
    (inp,), outs = weights.onnx_io(path)
    if inp[1:] != (3, DWPOSE_INPUT[1], DWPOSE_INPUT[0]) or [o[1:] for o in outs] != DWPOSE_OUTPUTS:
        raise WeightsError(f"weights 'dwpose': input {inp} outputs {outs}, expected (1, 3, 384, 288) -> "
                           "simcc_x (1, 133, 576), simcc_y (1, 133, 768)")


weights.register(weights.WeightsEntry(
    name="dwpose", filename="dw-ll_ucoco_384.onnx",
    urls=("https://huggingface.co/yzd-v/DWPose/resolve/main/dw-ll_ucoco_384.onnx",),
    hash_kind="unpinned", sha256="", size=None, size_exact=False, licence="Apache-2.0 (DWPose)", container="onnx",
    description="DWPose whole-body pose (HKC, paper-compatible detector)",
    build=weights.onnx_session, check=check_dwpose))


HKC_DETECTORS = {"mediapipe-hands": hkc_mediapipe, "dwpose": lambda frames: DWPose()(frames)}


def hkc_frames(frames: np.ndarray, detector: str = "mediapipe-hands") -> np.ndarray:
    if detector not in HKC_DETECTORS:
        raise ValueError(f"unknown hand detector {detector!r}; choose from {sorted(HKC_DETECTORS)}")
    return HKC_DETECTORS[detector](frames)
