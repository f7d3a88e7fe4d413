"""Evaluator and `talkbench metrics compute`: rows in the results schema, null rows with reasons for missing
weights or inputs, non-standard protocol ids for unverified weights, and the CLI run the way a user types it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from talkbench.cli.main import main
from talkbench.manifests.io import read_rows, write_table
from talkbench import weights
from talkbench.metrics import random_weights
from talkbench.metrics.evaluate import Evaluator
from talkbench.metrics.spec import METRICS, computable

ROW_KEYS = {"metric", "value", "null_reason", "n", "flags", "weights", "extra"}


def as_results(rows):
    return [{**r, "method": "test", "task": None, "split": None, "talkbench_version": "0"} for r in rows]


def test_registry_directions_and_metric_classes_agree():
    assert computable() == ("psnr", "ssim", "lpips", "csim", "akd", "akd_driver", "aed", "fid", "fid_clean", "fvd",
                            "sync_c", "sync_d", "av_offset", "diversity", "hkc")
    want = {"psnr": True, "ssim": True, "lpips": False, "csim": True, "akd": False, "akd_driver": False, "aed": False,
            "fid": False, "fid_clean": False, "fvd": False, "sync_c": True, "sync_d": False, "av_offset": None,
            "diversity": None, "hkc": True}
    assert {m: METRICS[m].higher_is_better for m in computable()} == want
    # every torchmetrics class states the same direction as its registry entry, None included
    from talkbench.metrics import frechet, lpips, pixel, video_metrics

    classes = {"psnr": pixel.PSNR, "ssim": pixel.SSIM, "lpips": lpips.LPIPS, "fid": frechet.FID,
               "fvd": frechet.FVD, "csim": video_metrics.CSIM, "aed": video_metrics.AED, "hkc": video_metrics.HKC,
               "diversity": video_metrics.Diversity, "akd": video_metrics.AKD}
    for name, cls in classes.items():
        assert cls.higher_is_better is METRICS[name].higher_is_better, name
    with pytest.raises(ValueError, match="unknown metric 'niqe'"):
        Evaluator(metrics=["psnr", "niqe"])


def test_missing_weights_give_null_rows_and_others_run(home, face_frames, tmp_path):
    ev = Evaluator(metrics=["psnr", "ssim", "lpips", "sync_c", "sync_d", "av_offset", "fvd"])
    missing = ev.missing_weights()
    assert set(missing) == {"lpips", "sync_c", "sync_d", "av_offset", "fvd"}
    assert "talkbench weights fetch" in missing["lpips"]
    audio = np.zeros(len(face_frames) * 640, np.float32)
    rows = ev.add_video("clip-a", face_frames, face_frames, audio=audio)
    by = {r["metric"]: r for r in rows}
    assert set(by) == {"psnr", "ssim", "lpips", "sync_c", "sync_d", "av_offset"}
    assert all(ROW_KEYS <= set(r) for r in rows)
    assert by["psnr"]["value"] == float("inf") and by["ssim"]["value"] == pytest.approx(1.0)
    assert by["lpips"]["value"] is None and "missing weights" in by["lpips"]["null_reason"]
    assert "syncnet" in by["sync_c"]["null_reason"]
    final = ev.finalize()
    assert [r["metric"] for r in final] == ["fvd"] and final[0]["value"] is None and final[0]["clip_id"] is None
    write_table(as_results(rows + final), tmp_path / "r.parquet", "results")
    back = read_rows(tmp_path / "r.parquet", "results")
    assert {r["protocol_id"] for r in back} == {"talkbench-v1-256"} and all(r["protocol_standard"] for r in back)


def test_absent_inputs_are_null_with_reason(home, face_frames):
    ev = Evaluator(metrics=["psnr", "akd", "csim", "sync_c", "hkc"])
    rows = {r["metric"]: r for r in ev.add_video("c", face_frames[:2])}
    assert rows["psnr"]["null_reason"] == "no ground truth given"
    assert rows["akd"]["null_reason"] == "no ground truth given"
    assert rows["csim"]["null_reason"].startswith("missing weights")  # buffalo_l not installed
    assert rows["sync_c"]["null_reason"].startswith("missing weights")
    assert rows["hkc"]["value"] == 0.0 and json.loads(rows["hkc"]["extra"])["detector"] == "mediapipe-hands"


def test_injected_networks_run_every_per_video_metric(home, face_frames, tmp_path):
    from talkbench.faces.detect import FivePointDetector
    from talkbench.metrics.identity import ArcFace
    from talkbench.metrics.lpips import LPIPSNet

    arc = tmp_path / "arc.onnx"
    arc.write_bytes(random_weights.arcface_onnx(0))
    i3d = random_weights.write_torchscript("i3d", tmp_path / "i3d.pt")
    torch.manual_seed(0)
    nets = {"lpips": LPIPSNet("alex"), "arcface": ArcFace(arc), "five_points": FivePointDetector("mediapipe"),
            "fvd": weights.load_torchscript_file(i3d)}
    ev = Evaluator(metrics=["psnr", "ssim", "lpips", "csim", "aed", "akd", "diversity", "fvd"], networks=nets)
    assert ev.missing_weights() == {} and ev.protocol_standard is False  # injected networks are never standard
    frames = np.concatenate([face_frames, face_frames])  # 16 frames for FVD
    gt = np.roll(frames, 1, axis=2)
    for clip in ("a", "b"):
        rows = {r["metric"]: r for r in ev.add_video(clip, frames, gt, source=face_frames[0])}
        assert rows["lpips"]["value"] > 0 and json.loads(rows["lpips"]["weights"]) == {"alexnet": "injected",
                                                                                        "lpips-alex": "injected"}
        assert rows["csim"]["value"] == pytest.approx(1.0, abs=0.05)  # the source is one of the frames
        assert json.loads(rows["csim"]["extra"])["detection_failure_rate"] == 0.0
        assert rows["aed"]["value"] >= 0 and rows["akd"]["value"] > 0 and rows["diversity"]["value"] > 0
    (fvd,) = ev.finalize()
    assert fvd["metric"] == "fvd" and fvd["value"] is not None and fvd["n"] == 2


def test_unverified_weights_mark_a_nonstandard_protocol(home, tmp_path):
    path = random_weights.write_random("lpips-alex", tmp_path / "alex.pth")
    weights.install_file("lpips-alex", path, unverified=True)
    random_weights.install_random(["alexnet"])
    ev = Evaluator(metrics=["psnr", "lpips"])
    assert ev.protocol_standard is False
    assert ev.protocol_id.startswith("talkbench-v1-256+nonstd.")
    assert Evaluator(metrics=["psnr"]).protocol_id == "talkbench-v1-256"  # psnr uses no weights


@pytest.fixture(scope="module")
def videos(tmp_path_factory, face_frames):
    from talkbench.media import write_video

    folder = tmp_path_factory.mktemp("vids")
    from PIL import Image

    frames = np.stack([np.asarray(Image.fromarray(f).resize((256, 256))) for f in face_frames])
    pred = write_video(folder / "pred" / "clip1.mp4", frames, fps=25)
    gt = write_video(folder / "gt" / "clip1.mp4", np.roll(frames, 2, axis=1), fps=25)
    png = folder / "png"
    png.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(png / f"{i:04d}.png")
    return pred, gt, png


def test_cli_compute_writes_results(home, videos, tmp_path, capsys):
    pred, gt, png = videos
    out = tmp_path / "res.parquet"
    code = main(["metrics", "compute", "--pred", str(pred.parent), "--gt", str(gt.parent), "--metrics",
                 "psnr,ssim,lpips", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "psnr" in printed and "missing weights" in printed
    rows = {r["metric"]: r for r in read_rows(out, "results")}
    assert rows["psnr"]["clip_id"] == "clip1" and 15 < rows["psnr"]["value"] < 60 and rows["psnr"]["n"] == 8
    assert 0 < rows["ssim"]["value"] < 1
    assert rows["lpips"]["value"] is None and "talkbench weights fetch" in rows["lpips"]["null_reason"]
    # A folder of PNG frames against itself.
    assert main(["metrics", "compute", "--pred", str(png), "--gt", str(png), "--metrics", "psnr", "--out", str(out)]) == 0
    assert read_rows(out, "results")[0]["value"] == float("inf")


def test_cli_errors_are_one_line(home, tmp_path, capsys):
    code = main(["metrics", "compute", "--pred", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "x.parquet")])
    assert code == 1
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err
    assert main(["metrics", "compute", "--help"]) == 0
    assert main(["metrics", "--help"]) == 0


def test_cli_resamples_other_frame_rates_and_says_so(home, face_frames, tmp_path):
    from talkbench.media import write_video

    video = write_video(tmp_path / "v30.mp4", np.concatenate([face_frames] * 2), fps=30)
    out = tmp_path / "r.parquet"
    assert main(["metrics", "compute", "--pred", str(video), "--gt", str(video), "--metrics", "psnr",
                 "--out", str(out)]) == 0
    (row,) = read_rows(out, "results")
    assert row["value"] == float("inf") and row["n"] in (13, 14)  # 16 frames at 30 fps -> ~13 at 25 fps
    assert json.loads(row["extra"])["resampled"]["fps"] == [pytest.approx(30.0), 25.0]


@pytest.mark.slow
def test_evaluator_sync_rows_with_random_syncnet(home, face_frames):
    """Code path only (random weights): 224x224 face crops, --face-cropped, real-length audio."""
    from talkbench.metrics.nets.syncnet import SyncNet

    from PIL import Image

    frames = np.stack([np.asarray(Image.fromarray(f).resize((224, 224))) for f in np.concatenate([face_frames] * 3)])
    torch.manual_seed(0)
    ev = Evaluator(metrics=["sync_c", "sync_d", "av_offset"], face_cropped=True, networks={"syncnet": SyncNet().eval()})
    audio = (np.random.default_rng(0).normal(size=len(frames) * 640) * 0.1).astype(np.float32)
    rows = {r["metric"]: r for r in ev.add_video("c", frames, audio=audio)}
    assert rows["sync_d"]["value"] > 0 and rows["sync_c"]["value"] >= 0 and rows["sync_d"]["n"] == len(frames) - 5
    assert -15 <= rows["av_offset"]["value"] <= 15
    assert json.loads(rows["sync_c"]["extra"])["face_cropped"] is True
