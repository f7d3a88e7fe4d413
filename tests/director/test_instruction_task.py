"""`bench run --task instruction` on a `folder:` method: the documented layout is read, every control is scored
against the neutral video over its span, success rates and the usual metrics are rows of results.parquet. The
outputs are the astronaut (a real photo) with espeak-ng speech, moved in image space the way a follower would
(zoom, pan, an in-plane tilt) or not at all (a "nod" that does not nod must fail)."""

from __future__ import annotations

import json

import numpy as np
import pytest


def tilted(frames: np.ndarray, degrees: float) -> np.ndarray:
    import cv2

    h, w = frames.shape[1:3]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.stack([cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REPLICATE) for f in frames])


@pytest.fixture(scope="module")
def material(speech, tmp_path_factory):
    from PIL import Image
    from skimage import data

    from talkbench import media
    from talkbench.manifests import write_table
    from talkbench.models.directed import apply_camera

    _, samples, _ = speech
    root = tmp_path_factory.mktemp("instruction-task")
    n = int(round(len(samples) / 640))
    face = np.asarray(Image.fromarray(data.astronaut()[0:300, 80:380]).resize((128, 128)))
    frames = np.repeat(face[None], n, 0)
    media.write_video(root / "clips" / "astro.mp4", frames, fps=25.0, audio=samples, crf=12)
    write_table([{"clip_id": "astro", "source_id": "astro", "identity_id": "astronaut", "path": "clips/astro.mp4",
                  "n_frames": n, "fps": 25.0, "size": 128, "split": "test", "has_audio": True}],
                root / "clips.parquet", "clips")
    ramp = np.linspace(0, 1, n)
    out = root / "method" / "astro"
    out.mkdir(parents=True)
    videos = {
        "neutral": frames,
        "i01": frames,  # asked to nod, did not
        "i03": tilted(frames, 12.0),  # tilt
        "i05": apply_camera(frames, 0.25 * ramp, np.zeros((n, 2))),  # zoom in
        "i07": apply_camera(frames, np.zeros(n), np.stack([0.12 * ramp, 0 * ramp], 1)),  # pan
    }
    for name, video in videos.items():
        media.write_video(out / f"{name}.mp4", video, fps=25.0, crf=12)
    return root


def test_folder_method_is_scored_per_control_against_neutral(material, tmp_path):
    import pyarrow.parquet as pq

    from talkbench.cli.bench import main as bench

    out = tmp_path / "run"
    code = bench(["run", "--task", "instruction", "--method", f"folder:{material / 'method'}", "--manifest",
                  str(material / "clips.parquet"), "--split", "test", "--out", str(out), "--quiet"])
    assert code == 0
    rows = pq.read_table(out / "results.parquet").to_pylist()
    by = {(r["metric"], r["clip_id"]): r for r in rows}
    for metric, job in (("adh_tilt", "astro/i03"), ("adh_zoom_in", "astro/i05"), ("adh_pan", "astro/i07")):
        row = by[(metric, job)]
        extra = json.loads(row["extra"])
        assert extra["success"] and row["value"] > extra["margin"], (metric, row)
    nod = by[("adh_nod", "astro/i01")]
    assert not json.loads(nod["extra"])["success"] and abs(nod["value"]) < 0.4
    assert by[("adh_nod", "astro/i20")]["null_reason"] == "missing_output"  # not in the folder
    assert by[("success_zoom_in", None)]["value"] == 1.0 and by[("success_nod", None)]["value"] == 0.0
    assert by[("success", None)]["value"] == pytest.approx(3 / 4)
    assert {"csim", "sync_c", "fid"} <= {r["metric"] for r in rows}  # the usual metrics (null without weights)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["task"] == "instruction" and "adh_zoom_in" in summary["metrics"]
    # a leaderboard task like the others
    code = bench(["publish", str(out), "--out", str(tmp_path / "boards"), "--format", "md,csv", "--quiet"])
    assert code == 0
    tables = "".join(p.read_text() for p in (tmp_path / "boards").rglob("*.md"))
    assert "instruction" in tables and "Zoom in (scale)" in tables and "Success rate" in tables


def test_folder_without_a_neutral_video_is_one_line(material, tmp_path, capsys):
    from talkbench.cli.bench import main as bench

    empty = tmp_path / "empty" / "astro"
    empty.mkdir(parents=True)
    code = bench(["run", "--task", "instruction", "--method", f"folder:{empty.parent}", "--manifest",
                  str(material / "clips.parquet"), "--split", "test", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "neutral.mp4 is missing" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_instructions_option_scores_only_the_chosen_ids(material, tmp_path, capsys):
    """`--instructions i03,i05`: only those two are scored (and recorded in run.json); an unknown id, or the option on
    another task, is a usage error of one line before anything is written."""
    import pyarrow.parquet as pq

    from talkbench.cli.bench import main as bench

    common = ["--method", f"folder:{material / 'method'}", "--manifest", str(material / "clips.parquet"), "--quiet"]
    out = tmp_path / "run"
    assert bench(["run", "--task", "instruction", "--instructions", "i05,i03", "--out", str(out), *common]) == 0
    jobs = {r["clip_id"] for r in pq.read_table(out / "results.parquet").to_pylist() if r["metric"].startswith("adh")}
    assert jobs == {"astro/i03", "astro/i05"}
    assert json.loads((out / "run.json").read_text())["instruction_ids"] == ["i03", "i05"]
    capsys.readouterr()
    for task, ids, said in (("instruction", "i05,nope", "unknown instruction 'nope'"),
                            ("self-reenact", "i05", "only task 'instruction' takes instruction ids")):
        bad = tmp_path / f"bad-{task}"
        code = bench(["run", "--task", task, "--instructions", ids, "--out", str(bad), *common])
        err = capsys.readouterr().err
        assert code == 2 and said in err and not bad.exists()


@pytest.mark.slow
def test_ours_directed_videos_follow_zoom_against_neutral(speech, tmp_path):
    """The real chain (plan → blueprint → sub-clips → render → camera) on a 1.5 s clip with the tiny models:
    the zoom-in instruction's video beats the neutral one on the face-scale change. Nod and shake on rendered video
    are NOT met with the tiny models on the demo material (the demo has no yaw/pitch head motion to learn): the
    measured figures and the diagnosis are in test_rendered_head_controls.py."""
    from PIL import Image
    from skimage import data

    import pyarrow.parquet as pq

    from talkbench import media
    from talkbench.bench.instruction import demo_instruction_run
    from talkbench.manifests import write_table
    from test_directed import tiny_pair

    _, samples, _ = speech
    samples = samples[: 24000]
    n = int(round(len(samples) / 640))
    face = np.asarray(Image.fromarray(data.astronaut()[0:300, 80:380]).resize((128, 128)))
    media.write_video(tmp_path / "clips" / "astro.mp4", np.repeat(face[None], n, 0), fps=25.0, audio=samples, crf=12)
    write_table([{"clip_id": "astro", "source_id": "astro", "identity_id": "astronaut", "path": "clips/astro.mp4",
                  "n_frames": n, "fps": 25.0, "size": 128, "split": "test", "has_audio": True}],
                tmp_path / "clips.parquet", "clips")
    pair = tiny_pair(tmp_path)
    out = demo_instruction_run(tmp_path / "run", tmp_path / "clips.parquet", pair["stage1"], pair["ckpt"],
                               ids=("i05",), steps=2)
    rows = {r["metric"]: r for r in pq.read_table(out / "results.parquet").to_pylist()}
    extra = json.loads(rows["adh_zoom_in"]["extra"])
    # measured: effect 0.256 log scale (the camera's 0.25 ramp; neutral −0.0005), margin 0.05
    assert extra["success"] and rows["adh_zoom_in"]["value"] > 0.15
    assert len(media.read_frames(out / "videos" / "astro" / "i05.mp4")) == n
