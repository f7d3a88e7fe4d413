"""Upper-body pipeline on the demo material: extract-targets tables → export-avatar-data (the npz training contract)
→ train avatar-render (as a family) → `bench run --method ours --task upper-body`.

One module fixture builds the data once (two short clips of t1.jpg's man with known motion, demo_upper); the
renderer is trained for one step, so these tests are about the contract, the units and the rows, not quality.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

SECONDS = {"person_b_alt": 1.0, "person_b": 0.24}  # 25 training frames (> 16 basis components), 6 scored


@pytest.fixture(scope="module")
def upper(tmp_path_factory):
    pytest.importorskip("mediapipe")
    pytest.importorskip("insightface")  # t1.jpg
    import torch

    from talkbench.curation.targets import extract_targets
    from talkbench.curation.upper_body import UpperBodyConfig
    from talkbench.demo_upper import make_upper_bench_clips
    from talkbench.manifests import write_table
    from talkbench.models.avatar_data import export_avatar_data

    root = tmp_path_factory.mktemp("upper-bench")
    rows = make_upper_bench_clips(root, SECONDS)
    manifest = root / "clips.parquet"
    write_table(rows, manifest, "clips")
    extract_targets(manifest, root / "targets", UpperBodyConfig())
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        export = export_avatar_data(manifest, root / "data")
    finally:
        torch.set_num_threads(n)
    return {"root": root, "manifest": manifest, "rows": {r["source_id"]: r for r in rows}, "export": export}


@pytest.fixture(scope="module")
def render_checkpoint(upper):
    """`train avatar-render --manifest DATA` through the family contract: one step of batch 1."""
    import torch

    from talkbench.models.families import FAMILIES

    family = FAMILIES["avatar-render"]
    cfg = family.train_config(manifest=str(upper["root"] / "data"), out=str(upper["root"] / "render"), max_steps=1,
                              batch_size=1, device="cpu", perceptual="none-l1-pyramid", ckpt_every=1)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = family.trainer_module().main(cfg)
    finally:
        torch.set_num_threads(n)
    return result["checkpoint"]


@pytest.mark.slow
def test_export_writes_the_training_contract_in_model_units(upper, capsys):
    from talkbench.cli.main import main
    from talkbench.manifests.targets import load_targets
    from talkbench.models.avatar_data import export_avatar_data, model_arrays

    data = upper["root"] / "data"
    train, test = upper["rows"]["person_b_alt"], upper["rows"]["person_b"]
    assert json.loads((data / "split.json").read_text()) == {"test": [test["clip_id"]], "train": [train["clip_id"]]}
    with np.load(data / "clips" / f"{train['clip_id']}.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    assert arrays["frames"].shape == (25, 384, 256, 3) and arrays["audio"].dtype == np.float32
    assert len(arrays["audio"]) == pytest.approx(25 * 640, abs=640)
    # round trip: the npz holds exactly the conversion of the curation's tables
    tg = load_targets(upper["root"] / "targets", train["clip_id"])
    expected, record = model_arrays(tg["expression"], tg["pose6"], tg["body"], tg["hands"], tg["hand_present"],
                                    256, 384)
    for key in ("expression", "pose6", "body", "hands", "hand_visible"):
        np.testing.assert_array_equal(arrays[key], expected[key])
    assert record["filled_face"] == record["filled_body"] == 0
    # units: body points in [-1, 1] of the frame; the known torso sway moves the shoulders (demo_upper truth, in
    # rendered-frame pixels: 840 px tall, shown at 384)
    truth = np.load(upper["root"] / "clips" / "person_b_alt.npz")
    shoulders_x = arrays["body"][:, 1:3, 0].mean(1)
    assert np.abs(arrays["body"]).max() < 1.0
    r = float(np.corrcoef(shoulders_x, truth["torso_dx"])[0, 1])
    assert r > 0.8, r  # measured 0.977
    # the raised hand is the subject's right (Pose 16, body point 6): model slot 1, its wrist beside body point 6
    assert arrays["hand_visible"][:, 1].mean() > 0.5 and arrays["hand_visible"][:, 0].mean() < 0.2
    seen = arrays["hand_visible"][:, 1] > 0
    gap = np.linalg.norm(arrays["hands"][seen, 1, 0] - arrays["body"][seen, 6], axis=-1)
    assert np.median(gap) < 0.1, np.median(gap)  # measured 0.043; visible in 100 % (slot 1) and 4 % (slot 0)
    with np.load(data / "basis.npz") as z:
        assert z["mean"].shape == (1404,) and z["components"].shape == (16, 1404)
    # a rerun of the same inputs reuses the export (npz bytes are not stable; a resumed run checks their hashes)
    before = (data / "clips" / f"{train['clip_id']}.npz").stat().st_mtime_ns
    assert main(["export-avatar-data", "--manifest", str(upper["manifest"]), "--out", str(data)]) == 0
    assert f"wrote 2 clips to {data}" in capsys.readouterr().out
    assert (data / "clips" / f"{train['clip_id']}.npz").stat().st_mtime_ns == before
    assert export_avatar_data(upper["manifest"], data)["clips"] == upper["export"]["clips"]


def test_export_refuses_missing_targets_before_writing(tmp_path):
    from talkbench.errors import ConfigError, ManifestError
    from talkbench.manifests import write_table
    from talkbench.models.avatar_data import export_avatar_data

    manifest = tmp_path / "clips.parquet"
    write_table([{"clip_id": "a", "source_id": "a", "path": "clips/a.mp4", "split": "train"}], manifest, "clips")
    with pytest.raises(ManifestError, match=r"missing target tables \[.*'expression'.*run talkbench extract-targets"):
        export_avatar_data(manifest, tmp_path / "out")
    with pytest.raises(ManifestError, match="no such clips manifest"):
        export_avatar_data(tmp_path / "nope.parquet", tmp_path / "out")
    (tmp_path / "targets").mkdir()
    for name in ("expression", "expression_basis", "head_pose", "body_keypoints", "hand_keypoints"):
        (tmp_path / "targets" / f"{name}.parquet").write_bytes(b"")
    with pytest.raises(ConfigError, match="2:3"):
        export_avatar_data(manifest, tmp_path / "out", size=(256, 256))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_bench_ours_on_upper_body_scores_every_metric_or_says_why(upper, render_checkpoint, tmp_path):
    import pyarrow.parquet as pq

    from talkbench.bench.tasks import TASKS
    from talkbench.cli.main import main

    out = tmp_path / "ours-upper"
    assert main(["bench", "run", "--method", "ours", "--task", "upper-body", "--checkpoint", render_checkpoint,
                 "--manifest", str(upper["manifest"]), "--split", "test", "--batch-size", "3", "--out", str(out),
                 "--quiet"]) == 0
    rows = pq.read_table(out / "results.parquet").to_pylist()
    by_metric = {r["metric"]: r for r in rows}
    assert set(by_metric) == set(TASKS["upper-body"].metrics) >= {"psnr", "ssim", "lpips", "fid", "fvd", "csim", "hkc"}
    for row in rows:  # a value, or null with its reason: never a silent gap
        assert (row["value"] is None) == bool(row["null_reason"]), row
    assert 0.0 <= by_metric["hkc"]["value"] <= 1.0 and by_metric["hkc"]["n"] == 5  # frames 1..5
    assert 5 < by_metric["psnr"]["value"] < 40
    extra = json.loads(by_metric["psnr"]["extra"])
    assert extra["resampled"] == {"model_size": [256, 384], "size": [256, 256]} and extra["scored_frames"] == "1..5"


def _render_payload():
    import torch

    from talkbench.models import kp_renderer

    torch.manual_seed(0)
    model = kp_renderer.KeypointRenderer(kp_renderer.get_config("tiny"))
    return {"model": model.state_dict(), "ema": model.state_dict(), "step": 0, "manifest_sha": "0" * 64,
            "cfg": {"family": "avatar-render", "model": model.cfg.to_dict(), "train": {}}}


def test_bench_ours_refuses_avatar_checkpoints_it_cannot_render_with(tmp_path):
    from talkbench.bench.methods import make_method
    from talkbench.errors import ConfigError
    from talkbench.models import checkpoints

    payload = _render_payload()
    no_basis = checkpoints.save(tmp_path / "no-basis.pt", payload)
    with pytest.raises(ConfigError, match="carries no curation expression basis"):
        make_method("ours", checkpoint=str(no_basis))
    payload["cfg"]["family"] = "avatar-face"
    face = checkpoints.save(tmp_path / "face.pt", payload)
    with pytest.raises(ConfigError, match=r"unknown checkpoint family 'avatar-face' .*; choose from \['audio2motion', "
                                          r"'avatar-render', 'motion'\]"):
        make_method("ours", checkpoint=str(face))


def test_hkc_without_its_detector_is_null_with_the_reason(monkeypatch):
    """HKC is registered for upper-body; when MediaPipe Hands is not importable the row says so (never dropped)."""
    from talkbench.errors import require
    from talkbench.metrics import hands
    from talkbench.metrics.evaluate import Evaluator

    monkeypatch.setitem(hands.HKC_DETECTORS, "mediapipe-hands",
                        lambda frames: require("mediapipe_not_here", "pip install mediapipe==0.10.21"))
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    rows = Evaluator(protocol_id="talkbench-v1-256", metrics=["hkc"], device="cpu").add_video("c", frames)
    assert rows[0]["metric"] == "hkc" and rows[0]["value"] is None
    assert "MissingDependencyError: mediapipe_not_here is not installed" in rows[0]["null_reason"]
    assert "pip install mediapipe==0.10.21" in rows[0]["null_reason"]


def test_render_model_states_follow_its_device(tmp_path):
    import torch

    from talkbench.models import checkpoints
    from talkbench.models.avatar import RenderModel

    payload = _render_payload()
    payload.update(basis_mean=torch.zeros(1404), basis_components=torch.eye(16, 1404))
    model = RenderModel.load(checkpoints.save(tmp_path / "render.pt", payload), device="meta")
    tensors = list(model.render.parameters()) + list(model.render.buffers())
    assert tensors and {t.device.type for t in tensors} == {"meta"}


@pytest.mark.slow
def test_generation_reads_a_new_face_in_the_training_units(upper):
    """`generate avatar` turns a portrait or style reference into coefficients with the exported basis through the
    same formulas as the tables (manifests.targets): on the scored clip's frames they agree with its targets."""
    import math

    from talkbench.manifests.targets import load_targets
    from talkbench.media import read_frames
    from talkbench.models.avatar import mesh_coefficients
    from talkbench.models.avatar_data import model_arrays

    clip = upper["rows"]["person_b"]
    with np.load(upper["root"] / "data" / "basis.npz") as z:
        basis = (z["mean"], z["components"])
    frames = read_frames(upper["root"] / clip["path"])
    tg = load_targets(upper["root"] / "targets", clip["clip_id"])
    want, _ = model_arrays(tg["expression"], tg["pose6"], tg["body"], tg["hands"], tg["hand_present"], 256, 384)
    got = mesh_coefficients(frames, basis, 16, "clip", nose=want["body"][:, 0])  # Pose's nose, as for a portrait
    np.testing.assert_allclose(got[:, :16], tg["expression"], atol=1e-3)
    np.testing.assert_allclose(got[:, 16:19], tg["pose6"][:, :3] / (math.pi / 2), atol=1e-4)
    np.testing.assert_allclose(got[:, 19:22], want["pose6"][:, 3:6], rtol=1e-3, atol=1e-3)  # tx, ty, scale
    # without a body (a style reference) the mesh's nose tip stands in: a bounded offset (measured 0.72)
    alone = mesh_coefficients(frames, basis, 16, "clip")
    np.testing.assert_array_equal(alone[:, :19], got[:, :19])
    assert 0.1 < np.abs(alone[:, 19:21] - want["pose6"][:, 3:5]).max() < 1.0
