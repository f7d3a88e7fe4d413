"""Identity embeddings and clustering on real photos placed into short videos at known positions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from talkbench.curation.identity import (
    DEFAULT_THRESHOLDS, DlibEmbedder, EmbedStep, assign_identities, cluster_embeddings, identity_id_for, pick_samples,
    resolve_backend,
)
from talkbench.faces.arcface import ARCFACE_TEMPLATE, ArcFace, align_arcface, similarity_transform
from talkbench.runtime import StepContext

ASTRONAUT_BOX = (168, 69, 263, 164)  # dlib CNN detector box on skimage's astronaut
T1_BOXES = {"t1_3": (437, 267, 578, 409), "t1_2": (721, 355, 839, 473)}  # two people of insightface's t1.jpg


def _t1() -> np.ndarray:
    spec = importlib.util.find_spec("insightface")
    if spec is None:
        pytest.skip("insightface wheel (t1.jpg) not installed")
    from PIL import Image

    return np.array(Image.open(Path(spec.origin).parent / "data" / "images" / "t1.jpg").convert("RGB"))


def place(photo, box, scale, offset, angle=0.0, size=(640, 480), n=5):
    """n frames of a photo scaled and rotated about the face, face centre at ``offset``; returns (frames, box)."""
    import cv2

    fx, fy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    m = cv2.getRotationMatrix2D((fx, fy), angle, scale)
    m[:, 2] += (offset[0] - fx, offset[1] - fy)
    frame = cv2.warpAffine(photo, m, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    half = (box[2] - box[0]) * scale / 2
    return np.repeat(frame[None], n, 0), [offset[0] - half, offset[1] - half, offset[0] + half, offset[1] + half]


@pytest.fixture(scope="module")
def candidates(tmp_path_factory):
    """Candidate rows: the astronaut in two videos (different scale, position, rotation), two t1 people."""
    from skimage import data

    from talkbench.media import write_video

    folder = tmp_path_factory.mktemp("identity")
    astronaut, t1 = data.astronaut(), _t1()
    specs = [
        ("astro_a", "astronaut", astronaut, ASTRONAUT_BOX, 2.4, (320, 240), 0.0),
        ("astro_b", "astronaut", astronaut, ASTRONAUT_BOX, 1.6, (250, 260), 8.0),
        ("person_3", "t1_3", t1, T1_BOXES["t1_3"], 1.8, (330, 230), 0.0),
        ("person_2", "t1_2", t1, T1_BOXES["t1_2"], 2.0, (300, 250), -5.0),
    ]
    rows = []
    for source_id, label, photo, box, scale, offset, angle in specs:
        frames, face_box = place(photo, box, scale, offset, angle)
        path = folder / f"{source_id}.mp4"
        write_video(path, frames, 25.0)
        samples = [{"frame": i, "box": face_box, "score": 0.9, "landmarks5": None, "yaw": 0.0, "pitch": 0.0,
                    "roll": 0.0} for i in range(5)]
        rows.append({"candidate_id": f"{source_id}/0/0/0", "source_id": source_id, "source_label": label,
                     "abs_path": str(path), "fps": 25.0, "samples": samples})
    return rows


def test_same_person_in_two_videos_is_one_identity_and_two_people_are_two(candidates):
    step = EmbedStep("dlib")
    step.ctx = StepContext(step.name)
    embedded = list(step.run(candidates))
    assert len(embedded) == 4 and not step.ctx.rejections
    assert all(len(r["embedding"]) == 128 and r["identity_backend"] == "dlib" for r in embedded)
    assert embedded[0]["identity_model"] == "dlib_face_recognition_resnet_model_v1"
    rows = {r["source_id"]: r for r in assign_identities(embedded, DEFAULT_THRESHOLDS["dlib"])}
    assert rows["astro_a"]["identity_id"] == rows["astro_b"]["identity_id"]
    assert len({rows[k]["identity_id"] for k in ("astro_a", "person_3", "person_2")}) == 3
    # Same person across scale/rotation: cosine distance well under the threshold; different people well over it.
    e = {k: np.array(r["embedding"]) for k, r in rows.items()}
    assert 1 - e["astro_a"] @ e["astro_b"] < 0.03
    assert 1 - e["astro_a"] @ e["person_3"] > 0.09
    assert 1 - e["person_2"] @ e["person_3"] > DEFAULT_THRESHOLDS["dlib"]
    assert rows["astro_a"]["identity_score"] > 0.99
    assert rows["person_3"]["identity_score"] == pytest.approx(1.0)  # a singleton is its own centroid
    # The identity id is a hash of the sorted member ids: independent of row order.
    assert rows["astro_a"]["identity_id"] == identity_id_for(["astro_b/0/0/0", "astro_a/0/0/0"])
    again = {r["source_id"]: r["identity_id"] for r in assign_identities(embedded[::-1], DEFAULT_THRESHOLDS["dlib"])}
    assert again == {k: r["identity_id"] for k, r in rows.items()}


def test_cluster_labels_follow_first_appearance_and_threshold():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    near_a = np.array([0.995, 0.0998, 0.0])  # cosine distance 0.005 to a
    x = np.stack([b, a, near_a, b])
    assert cluster_embeddings(x, 0.07).tolist() == [0, 1, 1, 0]
    assert cluster_embeddings(x, 0.001).tolist() == [0, 1, 2, 0]
    assert cluster_embeddings(x, 1.5).tolist() == [0, 0, 0, 0]
    assert cluster_embeddings(x[:1], 0.07).tolist() == [0]


def test_pick_samples_spreads_over_the_track():
    samples = [{"frame": f} for f in (40, 0, 10, 20, 30)]
    assert [s["frame"] for s in pick_samples(samples, 3)] == [0, 20, 40]
    assert [s["frame"] for s in pick_samples(samples[:2], 3)] == [0, 40]


def test_backend_resolution():
    assert resolve_backend("dlib") == "dlib"
    assert resolve_backend("auto") == "dlib"  # the isolated TALKBENCH_HOME has no buffalo_l
    with pytest.raises(ValueError, match="unknown identity backend 'facenet'; choose from"):
        resolve_backend("facenet")


def test_similarity_transform_recovers_a_known_warp():
    angle, scale, shift = np.deg2rad(17.0), 2.3, np.array([41.0, -7.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = ARCFACE_TEMPLATE @ (scale * rot).T + shift
    m = similarity_transform(pts, ARCFACE_TEMPLATE)
    back = pts @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(back, ARCFACE_TEMPLATE, atol=1e-9)


def _random_arcface_onnx(path: Path) -> Path:
    """An ONNX file in the official recognition-model format ((N, 3, 112, 112) → (N, 512)) with random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((192, 512)).astype(np.float32), "fc")
    nodes = [helper.make_node("AveragePool", ["input.1"], ["p"], kernel_shape=[14, 14], strides=[14, 14]),
             helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("MatMul", ["f", "fc"], ["683"])]
    graph = helper.make_graph(nodes, "arcface-random", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT,
                                                                                      [1, 3, 112, 112])],
                              [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, 512])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_arcface_loader_accepts_the_official_format(tmp_path):
    """Random weights: checks the loading, alignment and preprocessing path only, not recognition quality."""
    from skimage import data

    pack = tmp_path / "buffalo_l"
    pack.mkdir()
    _random_arcface_onnx(pack / "w600k_r50.onnx")
    embedder = ArcFace(pack)
    assert embedder.backend == "arcface" and embedder.model == "buffalo_l/w600k_r50.onnx" and embedder.size == 112
    # Landmarks: the template mapped into the astronaut's box, so alignment gives back (nearly) that box.
    x0, y0, x1, y1 = ASTRONAUT_BOX
    marks = ARCFACE_TEMPLATE / 112.0 * (x1 - x0) + (x0, y0)
    image = data.astronaut()
    v = embedder.embed(image, ASTRONAUT_BOX, marks)
    assert v.shape == (512,) and np.linalg.norm(v) == pytest.approx(1.0)
    aligned = align_arcface(image, marks)
    assert aligned.shape == (112, 112, 3)
    import cv2

    expected = cv2.resize(image[y0:y1, x0:x1], (112, 112), interpolation=cv2.INTER_LINEAR)
    assert np.abs(aligned.astype(int) - expected.astype(int)).mean() < 6.0
    with pytest.raises(Exception, match="5 landmarks"):
        embedder.embed(image, ASTRONAUT_BOX, None)


def test_dlib_embedder_is_stable_on_the_same_face():
    from skimage import data

    e = DlibEmbedder()
    image = data.astronaut()
    a = e.embed(image, ASTRONAUT_BOX)
    b = e.embed(image, (170, 72, 266, 166))  # a box shifted by a few pixels
    assert a.shape == (128,) and np.linalg.norm(a) == pytest.approx(1.0)
    assert 1 - a @ b < 0.01
