"""One head-pose estimator for the curation filter and the pose metrics, one five-point definition, the lip gap.

Real material: skimage's astronaut (a near-frontal portrait) rotated in the image plane by known angles, so the
applied roll is the answer both paths must find; and its mirror image, which swaps the subject's sides.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from talkbench.curation.faces import summarise_track, track_faces
from talkbench.curation.filters import MaxPose
from talkbench.demo import load_photo
from talkbench.faces import points
from talkbench.faces.detect import FivePointDetector, MediaPipeBackend, mesh_landmarks
from talkbench.faces.pose import head_pose
from talkbench.metrics.motion import pose_diversity

SIZE = 512
CENTRE = (227.0, 120.0)  # the astronaut's face centre in the 512-px photo
ANGLES = (-30.0, -15.0, 0.0, 15.0, 30.0)


def _rotated(angle: float) -> np.ndarray:
    photo = load_photo("astronaut")
    mat = cv2.getRotationMatrix2D(CENTRE, angle, 1.0)
    return cv2.warpAffine(photo, mat, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT_101)


@pytest.fixture(scope="module")
def rotated_frames() -> np.ndarray:
    return np.stack([_rotated(a) for a in ANGLES])


@pytest.fixture(scope="module")
def backend():
    b = MediaPipeBackend()
    yield b
    b.close()


def test_filter_and_metric_measure_the_same_angles(rotated_frames, backend):
    """The curation path (detector box → rolled mesh crop → pose, as FaceStep records per sample) and the metric path
    (full-frame mesh → head_pose, as the diversity row's pose spread) give the same angles, and both find the
    applied roll."""
    curation = []
    for frame in rotated_frames:
        (det,) = backend.detect(frame)
        curation.append((det.yaw, det.pitch, det.roll))
    curation = np.array(curation)
    metric = head_pose(mesh_landmarks(rotated_frames))
    assert np.isfinite(metric).all()
    upright = ANGLES.index(0.0)
    for poses in (curation, metric):
        np.testing.assert_allclose(poses[:, 2] - poses[upright, 2], ANGLES, atol=4)  # roll follows the rotation
        assert np.abs(poses[:, 0] - poses[upright, 0]).max() < 5  # an in-plane turn leaves yaw alone
    # Same estimator on two landmark fits of the same faces: within a few degrees on every angle.
    assert np.abs(curation - metric).max() < 5, np.round(curation - metric, 2)
    # The metric's pose spread is the std of the applied roll (yaw and pitch stay put), averaged over 3 angles.
    assert pose_diversity(metric) == pytest.approx(np.std(ANGLES) / 3, abs=1.5)


def test_filter_reads_the_estimator_angles(backend):
    """A face rolled by 70° breaks the 60° limit through the recorded samples; the upright face passes."""
    shot = {"source_id": "s", "segment_index": 0, "shot_index": 0, "fps": 25.0, "width": SIZE, "height": SIZE,
            "shot_start_frame": 0, "shot_end_frame": 2}
    pose_filter = MaxPose(60, 60, 60)
    for angle, kept in ((0.0, True), (70.0, False)):
        dets = backend.detect(_rotated(angle))
        (track,) = track_faces([(0, dets), (1, dets)])
        row = summarise_track(track, shot, 0.4, (0, 1))
        assert row["roll_max"] == pytest.approx(abs(angle), abs=6)
        result = pose_filter.filter(row)
        assert (result is True) is kept, (angle, result)


def test_eye_naming_is_one_definition(backend):
    """Subject-side names: the subject's right eye is on the image left of a non-mirrored photo; the five points are
    in ArcFace (image-side) order for the curation backend, the metrics' detector and BlazeFace alike."""
    photo = _rotated(0.0)
    mesh = mesh_landmarks(photo[None])[0]
    right_eye = mesh[list(points.MESH_RIGHT_EYE), 0].mean()
    left_eye = mesh[list(points.MESH_LEFT_EYE), 0].mean()
    assert right_eye < left_eye  # subject's right = image left
    assert mesh[points.MESH_RIGHT_MOUTH, 0] < mesh[points.MESH_LEFT_MOUTH, 0]
    for subject_left, subject_right in points.MESH_PAIRS:  # the pose pairs read (subject's left, subject's right)
        assert mesh[subject_left, 0] > mesh[subject_right, 0]
    five = points.five_points_from_mesh(mesh)
    (box, _, kps), = backend.boxes(photo)
    assert np.linalg.norm(kps[0] - five[0]) < 6 and np.linalg.norm(kps[1] - five[1]) < 6  # BlazeFace: right eye first
    (det,) = backend.detect(photo)
    metric_five = FivePointDetector("mediapipe")(photo[None])[0]
    assert np.abs(np.array(det.landmarks5) - metric_five).max() < 4  # two mesh fits, one definition
    # A mirrored face swaps the subject's sides but the five points stay in image order.
    mirror = points.five_points_from_mesh(mesh_landmarks(np.ascontiguousarray(photo[:, ::-1])[None])[0])
    np.testing.assert_allclose(mirror[[1, 0, 2, 4, 3], 0], SIZE - five[:, 0], atol=4)


def test_lip_gap_is_the_mouth_opening_over_the_eye_distance():
    photo = _rotated(0.0)
    mesh = mesh_landmarks(photo[None])[0]
    smile = float(points.lip_gap(mesh))
    assert 0.1 < smile < 0.25  # a smile: lips parted over the teeth (about 7 px, inspected by eye)
    iod = float(points.inter_ocular(mesh))
    assert 38 < iod < 48  # eye centres of the 512-px photo: about 43 px apart, inspected by eye
    opened = mesh.copy()
    opened[points.MESH_LOWER_LIP, 1] += 0.3 * iod  # lower lip 0.3 inter-ocular distances down
    assert float(points.lip_gap(opened)) == pytest.approx(smile + 0.3, abs=0.02)
    # Scale-free: the photo at twice the size gives the same gap.
    big = cv2.resize(photo, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_CUBIC)
    assert float(points.lip_gap(mesh_landmarks(big[None])[0])) == pytest.approx(smile, abs=0.02)
    missing = np.full((2, 468, 3), np.nan)
    assert np.isnan(points.lip_gap(missing)).all()
