"""The whole clip pipeline on real material, end to end on the local executor: manifests, rerun, kill -9 + resume."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from talkbench.curation.clip_pipeline import clip_id_for, segment_rows
from talkbench.curation.stages import STAGES
from talkbench.manifests.io import read_rows

SECONDS = 2.4  # ≥ the 2 s minimum duration
FRAME = (640, 480)  # the demo's portraits and face sizes on a smaller canvas than the demo's
# 960×720 costs a third less to encode, normalise and detect (measured: the file's tests 80 → 53 CPU-s)


@pytest.fixture(scope="module")
def sources_csv(tmp_path_factory):
    """Two real people (skimage's astronaut, a person of insightface's t1.jpg) in two videos each, animated with
    known head motion and espeak-ng speech, plus the astronaut's face at 150 px (to be rejected as too small)."""
    from talkbench.demo import PORTRAITS, render_portrait, speech, t1_path
    from talkbench.media import write_video

    if t1_path() is None:
        pytest.skip("insightface wheel (t1.jpg) not installed")
    folder = tmp_path_factory.mktemp("clip-sources")
    lines = ["url,start,end,identity"]
    for name in ("astronaut", "person_c"):
        audio = speech(PORTRAITS[name].text, PORTRAITS[name].voice, SECONDS)
        for kind in ("sway", "zoom"):
            frames, _ = render_portrait(name, kind, SECONDS, size=FRAME)
            write_video(folder / f"{name}_{kind}.mp4", frames, 25.0, audio=audio)
            lines.append(f"{name}_{kind}.mp4,,,{name}")
    frames, _ = render_portrait("astronaut", "nod", SECONDS, face_size=150.0, size=FRAME)
    write_video(folder / "small_face.mp4", frames, 25.0, audio=audio)
    lines.append("small_face.mp4,,,astronaut")
    path = folder / "sources.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _build(csv, out):
    from talkbench.curation.pipeline import build_manifest
    from talkbench.runtime import make_executor

    return build_manifest([csv], out, executor=make_executor("local", workers=1, quiet=True), quiet=True)


def _hashes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.parquet"))}


@pytest.fixture(scope="module")
def curated(sources_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("curated")
    result = _build(sources_csv, out)
    return out, result


@pytest.mark.slow
def test_clip_pipeline_end_to_end(curated):
    out, result = curated
    assert result.clips == 4 and result.stopped_after == "all"
    clips = read_rows(out / "clips.parquet", "clips")
    by_source = {c["source_id"]: c for c in clips}
    assert sorted(by_source) == ["astronaut_sway", "astronaut_zoom", "person_c_sway", "person_c_zoom"]
    # Identity: the same person in two videos is one identity; the two people are two identities.
    assert by_source["astronaut_sway"]["identity_id"] == by_source["astronaut_zoom"]["identity_id"]
    assert by_source["person_c_sway"]["identity_id"] == by_source["person_c_zoom"]["identity_id"]
    assert by_source["astronaut_sway"]["identity_id"] != by_source["person_c_sway"]["identity_id"]
    assert {c["source_label"] for c in clips} == {"astronaut", "person_c"}
    # Split by identity: one test identity, one train identity, no leakage.
    split_of = {}
    for c in clips:
        split_of.setdefault(c["identity_id"], set()).add(c["split"])
    assert sorted(next(iter(s)) for s in split_of.values()) == ["test", "train"]
    assert all(len(s) == 1 for s in split_of.values())
    from talkbench.curation.config import PIPELINE_VERSION, CurationConfig
    from talkbench.curation.export import count_frames
    from talkbench.media import probe_json, sha256_file

    config_hash = CurationConfig().hash()
    for c in clips:
        optional = {"frames_dir", "wav_path", "crop_height", "height", "path_small", "torso_fraction", "hands_fraction"}
        assert all(c[k] is not None for k in c if k not in optional), c
        assert (c["start_frame"], c["end_frame"], c["n_frames"], c["fps"]) == (0, 60, 60, 25.0)
        assert (c["start_s"], c["end_s"]) == (0.0, 2.4)
        assert c["config_hash"] == config_hash and c["pipeline_version"] == PIPELINE_VERSION
        assert c["identity_backend"] == "dlib" and c["detector_backend"] == "mediapipe"
        assert c["clip_id"] == clip_id_for({**c, "segment_start": 0.0}, config_hash)
        assert c["path"] == f"clips/{c['clip_id']}.mp4"
        path = out / c["path"]
        assert sha256_file(path) == c["sha256"] and count_frames(path) == 60
        video = next(s for s in probe_json(path)["streams"] if s["codec_type"] == "video")
        assert (video["width"], video["height"]) == (256, 256) and c["size"] == 256 and c["has_audio"]
        # The demo face box is 300 px (detector boxes differ a little); the crop is the union box over the head's
        # motion, enlarged by the 0.4 margin on each side: at least 1.8× the largest face box.
        assert 250 < c["face_size_median"] < 360 and c["crop_size"] >= 1.8 * c["face_size_max"] - 1
        assert c["crop_size"] < 2.4 * c["face_size_median"]
        assert c["identity_score"] > 0.95 and c["yaw_max"] < 60 and c["roll_max"] < 60
    rejections = read_rows(out / "rejections.parquet", "rejections")
    small = [r for r in rejections if r["source_id"] == "small_face"]
    assert [(r["reason"], r["threshold"]) for r in small] == [("face_too_small", 256.0)]
    assert 130 < small[0]["value"] < 170
    assert not [r for r in rejections if r["stage"] == "select"]  # 2 clips per identity: all selected
    html = (out / "report.html").read_text()
    assert "<tr><td>sources</td><td>5</td></tr>" in html and "<tr><td>kept</td><td>4</td></tr>" in html
    assert (out / "report" / "contact_sheet.png").exists()


@pytest.mark.slow
def test_rerun_is_a_noop_with_identical_files(curated, sources_csv):
    out, _ = curated
    before = _hashes(out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()}
    result = _build(sources_csv, out)
    assert result.clips == 4
    assert _hashes(out) == before
    assert {p.name: p.stat().st_mtime_ns for p in (out / "clips").iterdir()} == mtimes  # nothing re-exported


def _wait_for(path: Path, proc, timeout=240.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if path.exists() and any(path.iterdir()):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


CLIP_STATE = (*(stage.name for stage in STAGES[1:]), "clips", "clips.parquet", "rejections.parquet", "report",
              "report.html")


@pytest.mark.slow
def test_kill_9_then_rerun_gives_identical_manifests(curated, sources_csv, tmp_path):
    """Kill -9 during face tracking, again during export, then rerun: the same bytes as an uninterrupted run.

    The copy keeps the finished acquisition (its normalised segments), so the comparison covers the clip stages.
    """
    reference, _ = curated
    out = tmp_path / "killed"
    shutil.copytree(reference, out, ignore=lambda folder, names: [n for n in names if n in CLIP_STATE])
    assert not (out / "clips.parquet").exists() and (out / "stats" / "acquire").exists()
    code = ("import sys; from talkbench.curation.pipeline import build_manifest; "
            "from talkbench.runtime import make_executor; "
            "build_manifest([sys.argv[1]], sys.argv[2], executor=make_executor('local', quiet=True), quiet=True)")
    killed_in = []
    for stage in ("faces", "export"):
        proc = subprocess.Popen([sys.executable, "-c", code, str(sources_csv), str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if _wait_for(out / "stats" / stage / "completions", proc):
            os.kill(proc.pid, signal.SIGKILL)
            killed_in.append(stage)
        proc.wait()
    assert killed_in  # at least one run was killed mid-stage
    assert not (out / "clips.parquet").exists()
    _build(sources_csv, out)
    assert _hashes(out) == _hashes(reference)
    assert sorted(p.name for p in (out / "clips").iterdir()) == sorted(p.name for p in (reference / "clips").iterdir())


def test_segment_rows_explode_ok_segments_only(tmp_path):
    videos = [
        {"source_id": "b", "status": "ok", "norm_fps": 25.0, "has_audio": True, "source_label": "B", "norm_width": 1280,
         "norm_height": 720, "segments": [
             {"index": 1, "start": 10.0, "end": 14.0, "path": "media/b_1.mp4", "n_frames": 100, "status": "ok"},
             {"index": 0, "start": 0.0, "end": 4.0, "path": "media/b_0.mp4", "n_frames": 100, "status": "ok"},
             {"index": 2, "start": 20.0, "end": 24.0, "path": None, "n_frames": None, "status": "failed"}]},
        {"source_id": "a", "status": "failed", "segments": []},
    ]
    rows = segment_rows(videos, tmp_path)
    assert [(r["source_id"], r["segment_index"], r["segment_start"]) for r in rows] == [("b", 0, 0.0), ("b", 1, 10.0)]
    assert rows[1]["abs_path"] == str(tmp_path / "media/b_1.mp4") and rows[1]["width"] == 1280
    # The clip id counts pts in the source's 25 fps time base: segment 1 starts 250 frames in.
    a = clip_id_for({"source_id": "b", "fps": 25.0, "segment_start": 10.0, "start_frame": 0, "end_frame": 50}, "h")
    b = clip_id_for({"source_id": "b", "fps": 25.0, "segment_start": 0.0, "start_frame": 250, "end_frame": 300}, "h")
    assert a == b and a != clip_id_for({"source_id": "b", "fps": 25.0, "segment_start": 0.0, "start_frame": 0,
                                        "end_frame": 50}, "h")


def test_no_usable_video_gives_empty_manifests_and_a_report(tmp_path):
    from talkbench.curation.config import CurationConfig
    from talkbench.curation.pipeline import run_stages
    from talkbench.curation.stages import STAGES, Run
    from talkbench.runtime import make_executor

    prior = [{"stage": "acquire", "item_id": "v1", "source_id": "v1", "reason": "unavailable", "value": None,
              "threshold": None, "detail": None}]
    videos = [{"source_id": "v1", "status": "failed", "segments": []}]
    run = Run(tmp_path, CurationConfig(), make_executor("local", quiet=True), rejections=list(prior))
    clips = run_stages(run, videos, STAGES[1:])  # every stage after acquire, on videos none of which is usable
    rejections = run.rejections
    assert clips == [] and rejections == prior
    assert read_rows(tmp_path / "clips.parquet", "clips") == []
    assert read_rows(tmp_path / "rejections.parquet", "rejections") == prior
    html = (tmp_path / "report.html").read_text()
    assert "<tr><td>kept</td><td>0</td></tr>" in html and "<td>acquire</td><td>unavailable</td><td>1</td>" in html


@pytest.mark.slow
def test_whole_build_manifest_on_ray_gives_the_local_manifests(sources_csv, curated, tmp_path, monkeypatch):
    """`curate build-manifest --executor ray` (a local ray instance, 2 workers) writes the same bytes as the local run."""
    ray = pytest.importorskip("ray")
    from talkbench.curation.pipeline import build_manifest
    from talkbench.runtime import make_executor

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a ~/.ray/auth_token left by another tool must not matter
    local_out, _ = curated
    out = tmp_path / "ray"
    try:
        result = build_manifest([sources_csv], out, executor=make_executor("ray", workers=2, quiet=True), quiet=True)
    finally:
        ray.shutdown()
    assert result.clips == 4
    assert _hashes(out) == _hashes(local_out)
    local_clips = {c["clip_id"]: c["sha256"] for c in read_rows(local_out / "clips.parquet", "clips")}
    assert {p.stem for p in (out / "clips").glob("*.mp4")} == set(local_clips)
