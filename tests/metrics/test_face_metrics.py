"""CSIM / AED with a random-weight ArcFace ONNX on real faces, HKC with MediaPipe Hands and a DWPose-format ONNX,
Diversity and AKD from Face Mesh. Random weights test the code paths; the real-image values asserted are the ones
that hold for any embedding (identical faces) or any detector behaviour checked here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from talkbench.metrics import random_weights
from talkbench.faces.arcface import ARCFACE_TEMPLATE, align_arcface
from talkbench.faces.detect import FivePointDetector, mesh_landmarks
from talkbench.faces.points import five_points_from_mesh
from talkbench.metrics.hands import DWPose, hkc_frames
from talkbench.metrics.identity import ArcFace, aed, csim, embed_frames
from talkbench.metrics.motion import akd, diversity

T1 = Path(__import__("insightface").__file__).parent / "data" / "images" / "t1.jpg" if __import__(
    "importlib").util.find_spec("insightface") else None


@pytest.fixture(scope="module")
def arcface(tmp_path_factory):
    path = tmp_path_factory.mktemp("arc") / "w600k_r50.onnx"
    path.write_bytes(random_weights.arcface_onnx(0))
    return ArcFace(path)


def test_five_points_and_alignment_on_real_face(face_frames):
    points = five_points_from_mesh(mesh_landmarks(face_frames[:1]))[0]
    assert np.isfinite(points).all()
    left_eye, right_eye, nose, mouth_l, mouth_r = points
    assert left_eye[0] < right_eye[0] and mouth_l[0] < mouth_r[0] and left_eye[1] < nose[1] < mouth_l[1]
    aligned = align_arcface(face_frames[0], points)
    assert aligned.shape == (112, 112, 3)
    back = five_points_from_mesh(mesh_landmarks(np.stack([aligned])))[0]
    if np.isfinite(back).all():  # Face Mesh usually finds the aligned face again: its points sit on the template
        assert np.abs(back - ARCFACE_TEMPLATE).mean() < 6


def test_csim_of_identical_faces_is_one_and_failures_counted(face_frames, arcface):
    detector = FivePointDetector("mediapipe")
    src = embed_frames(face_frames[:1], arcface, detector)
    frames = face_frames[:3].copy()
    frames[2] = 0  # a black frame: no face
    emb = embed_frames(frames, arcface, detector)
    assert emb.failure_rate == pytest.approx(1 / 3)
    assert emb.detector == "mediapipe-face-mesh"
    assert csim(src.vectors[0], emb.vectors[:1]) == pytest.approx(1.0, abs=1e-6)
    assert -1.0 <= csim(src.vectors[0], emb.vectors) <= 1.0
    assert aed(emb.vectors, emb.vectors) == pytest.approx(0.0, abs=1e-9)


def test_hkc_mediapipe_on_real_photos(face_frames):
    from skimage import data

    assert hkc_frames(data.astronaut()[None]).tolist() == [0.0]  # no hands in the portrait
    if T1 is None:
        pytest.skip("insightface wheel (t1.jpg) not installed")
    from PIL import Image

    t1 = np.asarray(Image.open(T1).convert("RGB"))
    assert 0.3 < float(hkc_frames(t1[None])[0]) <= 1.0  # six people, hands visible
    with pytest.raises(ValueError, match="unknown hand detector .openpose."):
        hkc_frames(t1[None], "openpose")


def test_hkc_dwpose_code_path(tmp_path, face_frames):
    path = tmp_path / "dw.onnx"
    path.write_bytes(random_weights.dwpose_onnx(0))
    model = DWPose(path)
    assert model.preprocess(face_frames[0]).shape == (1, 3, 384, 288)
    scores = model(face_frames[:2])
    assert scores.shape == (2,) and np.all(scores > 0)


def test_diversity_and_akd(face_frames):
    mesh = mesh_landmarks(face_frames)
    value, n = diversity(mesh, 128, 128)
    assert n == len(face_frames) and 0 < value < 0.05  # frames move by one pixel
    still, _ = diversity(np.repeat(mesh[:1], 4, 0), 128, 128)
    assert still == 0.0
    dist, n = akd(mesh, mesh)
    assert dist == 0.0 and n == len(face_frames)
    shifted, _ = akd(mesh, mesh + np.array([3.0, 4.0, 0.0]))
    assert shifted == pytest.approx(5.0)


def test_video_metric_classes_stream_and_pickle(face_frames, arcface):
    import pickle

    from talkbench.metrics.video_metrics import AKD, CSIM, HKC, Diversity

    detector = FivePointDetector("mediapipe")
    c = CSIM(arcface, detector)
    c.update(face_frames[0], face_frames[:1])
    c.update(face_frames[0], np.zeros_like(face_frames[:2]))  # no face at all: skipped, not averaged in
    assert float(c.compute()) == pytest.approx(1.0, abs=1e-6) and int(c.skipped) == 1
    whole, parts = AKD(), AKD()
    gt = np.roll(face_frames, 2, axis=2)
    whole.update(face_frames[:4], gt[:4])
    whole.update(face_frames[4:], gt[4:])
    parts.update(face_frames[:4], gt[:4])
    clone = pickle.loads(pickle.dumps(parts))
    clone.update(face_frames[4:], gt[4:])
    assert float(clone.compute()) == pytest.approx(float(whole.compute()), rel=1e-12)
    assert float(whole.compute()) > 0 and AKD.higher_is_better is False
    h = HKC()
    h.update(face_frames[:2])
    assert float(h.compute()) == 0.0
    h.reset()
    assert int(h.videos) == 0
    d = Diversity()
    d.update(face_frames)
    assert 0 < float(d.compute()) < 0.05
