"""One input policy for `metrics compute` and `bench run` (issue 11, point 3): a 256×200 prediction is refused
unless asked, a 128 px one is resized and says so, a 40-frame one against 50 reference frames is refused or trimmed
with a record. Real portrait: skimage's astronaut, moving."""

from __future__ import annotations

import json

import numpy as np
import pytest

from talkbench.cli.main import main
from talkbench.manifests.io import read_rows
from talkbench.media import write_video


def portrait(n: int, w: int, h: int) -> np.ndarray:
    import cv2
    from skimage.data import astronaut

    img = astronaut()
    return np.stack([cv2.resize(img[10 + t:310 + t, 90 + t:390 + t], (w, h), interpolation=cv2.INTER_AREA)
                     for t in range(n)])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("policy")
    return {
        "gt": write_video(d / "gt" / "clip.mp4", portrait(50, 256, 256), 25.0),
        "wide": write_video(d / "wide" / "clip.mp4", portrait(50, 256, 200), 25.0),
        "small": write_video(d / "small" / "clip.mp4", portrait(50, 128, 128), 25.0),
        "short": write_video(d / "short" / "clip.mp4", portrait(40, 256, 256), 25.0),
    }


def compute(capsys, tmp_path, pred, gt, *extra):
    out = tmp_path / "r.parquet"
    code = main(["metrics", "compute", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr", "--out", str(out),
                 *extra])
    err = capsys.readouterr().err
    return code, err, (read_rows(out, "results") if out.exists() else None)


def test_nonsquare_prediction_is_refused_unless_asked(home, inputs, tmp_path, capsys):
    code, err, rows = compute(capsys, tmp_path, inputs["wide"], inputs["gt"])
    assert code == 1 and rows is None and len(err.strip().splitlines()) == 1
    assert "not_square: clip.mp4 is 256x200" in err and "--allow-nonsquare" in err
    code, err, rows = compute(capsys, tmp_path, inputs["wide"], inputs["gt"], "--allow-nonsquare")
    assert code == 0, err
    (row,) = rows
    assert json.loads(row["extra"])["resampled"] == {"nonsquare": [256, 200]}
    assert row["flags"] == "nonsquare_resized" and row["value"] > 15


def test_small_prediction_is_resized_and_recorded(home, inputs, tmp_path, capsys):
    code, err, rows = compute(capsys, tmp_path, inputs["small"], inputs["gt"])
    assert code == 0, err
    (row,) = rows
    assert json.loads(row["extra"])["resampled"] == {"size": [128, 256]} and row["value"] > 20


def test_short_prediction_is_refused_or_trimmed_with_a_record(home, inputs, tmp_path, capsys):
    code, err, rows = compute(capsys, tmp_path, inputs["short"], inputs["gt"])
    assert code == 1 and rows is None
    assert "frame_count_mismatch: expected 50 frames at the protocol fps, found 40" in err
    code, err, rows = compute(capsys, tmp_path, inputs["short"], inputs["gt"], "--length-policy", "trim")
    assert code == 0, err
    (row,) = rows
    assert json.loads(row["extra"])["trimmed"] == {"generated_frames": 40, "reference_frames": 50, "scored_frames": 40}
    assert row["flags"] == "length_trimmed" and row["n"] == 40 and row["value"] == float("inf")


def test_bench_folder_outputs_get_the_same_policy(home, inputs, tmp_path):
    """The same three files as `folder:` outputs of one clip each: the same refusals and the same records."""
    from talkbench.bench.methods import Folder, Inputs, OutputError
    from talkbench.manifests import get_protocol
    from talkbench.manifests.frames import read_video

    protocol = get_protocol("talkbench-v1-256")
    gt = read_video(inputs["gt"], protocol).frames
    job = {"clip_id": "clip"}
    given = Inputs(job, gt[0], gt, None, protocol.fps, protocol.size, protocol)

    def generate(name, **options):
        return Folder(inputs[name].parent, **options).generate(given)

    with pytest.raises(OutputError) as err:
        generate("wide")
    assert err.value.reason == "not_square"
    wide = generate("wide", allow_nonsquare=True)
    assert wide.extra["resampled"] == {"nonsquare": [256, 200]} and wide.flags == ["nonsquare_resized"]
    assert generate("small").extra["resampled"] == {"size": [128, 256]}
    with pytest.raises(OutputError) as err:
        generate("short")
    assert err.value.reason == "frame_count_mismatch"
    short = generate("short", length_policy="trim")
    assert short.extra["trimmed"] == {"generated_frames": 40, "reference_frames": 50, "scored_frames": 40}
    assert short.flags == ["length_trimmed"] and short.reference_frames == 40
