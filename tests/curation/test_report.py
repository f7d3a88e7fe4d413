"""The curation report: funnel numbers from stats and manifests, drops by reason, plots, contact sheet, CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from talkbench.cli.curate import main as curate
from talkbench.curation.clip_pipeline import CANDIDATE_COLUMNS
from talkbench.curation.report import build_report
from talkbench.manifests.io import write_table


def _summary(rows_in, rows_out, dropped=None):
    return {"ranks": 1, "rows_in": rows_in, "rows_out": rows_out,
            "steps": [{"name": "x", "rows_in": rows_in, "rows_out": rows_out, "dropped": dropped or {},
                       "counters": {}, "seconds": 0.0}]}


@pytest.fixture(scope="module")
def curated_dir(tmp_path_factory):
    """A curated folder with real exported clips (the astronaut photo), manifests and stage stats."""
    from skimage import data

    from talkbench.curation.export import export_clip
    from talkbench.media import write_video

    out = tmp_path_factory.mktemp("report")
    src = out / "media" / "src.mp4"
    write_video(src, np.repeat(data.astronaut()[None], 30, 0), 25.0)
    clips = []
    for k, (ident, split, yaw) in enumerate([("id-a", "train", 10.0), ("id-a", "train", 20.0),
                                              ("id-b", "test", 35.0)]):
        row = {c: None for c in CANDIDATE_COLUMNS}
        row.update(clip_id=f"clip-{k}", source_id=f"src{k}", segment_index=0, track_id=0, identity_id=ident,
                   source_label=ident[-1], identity_score=0.99, start_s=0.0, end_s=1.2, start_frame=0, end_frame=30,
                   fps=25.0, crop_x0=100 + 20 * k, crop_y0=20, crop_size=300, crop_margin=0.4, crop_padded=False,
                   face_size_median=280.0 + k, face_size_min=270.0, face_size_max=290.0, yaw_max=yaw, yaw_mean=5.0,
                   pitch_max=8.0, pitch_mean=3.0, roll_max=4.0, roll_mean=2.0, sharpness=120.0,
                   detector_backend="mediapipe", detector_model="m", identity_backend="dlib", identity_model="d",
                   config_hash="abc", pipeline_version="1", split=split, abs_path=str(src))
        row.update(export_clip(row, out, size=256))
        row.pop("abs_path")
        clips.append(row)
    write_table(clips, out / "clips.parquet", "clips")
    write_table([{"source_id": f"s{i}"} for i in range(5)], out / "sources.parquet", "sources")
    write_table([{"source_id": f"s{i}", "status": "ok" if i < 4 else "failed"} for i in range(5)],
                out / "videos.parquet", "videos")
    rej = [{"stage": "MinFaceSize", "item_id": f"c{i}", "reason": "face_too_small", "value": 100.0 + i,
            "threshold": 256.0} for i in range(4)]
    rej += [{"stage": "select", "item_id": "c9", "reason": "identity_too_few_clips", "value": 1.0, "threshold": 2.0}]
    rej += [{"stage": "acquire", "item_id": "s4", "reason": "unavailable"}]
    write_table(rej, out / "rejections.parquet", "rejections")
    for stage, (rin, rout) in {"scenes": (4, 9), "faces": (9, 11), "filters": (11, 7), "identity": (7, 7),
                               "select": (7, 3)}.items():
        (out / "stats" / stage).mkdir(parents=True)
        (out / "stats" / stage / "summary.json").write_text(json.dumps(_summary(rin, rout)))
    cluster = _summary(7, 7)
    cluster["steps"][0]["counters"] = {"identities": 3, "threshold_x1000": 70}
    (out / "stats" / "cluster").mkdir(parents=True)
    (out / "stats" / "cluster" / "summary.json").write_text(json.dumps(cluster))
    return out


def _funnel(html: str) -> list[tuple[str, int]]:
    """Both funnel tables (sources/videos, then clips), in order."""
    section = html.split("<h2>Funnel</h2>")[1].split("<h2>")[0]
    return [(a, int(b)) for a, b in re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td></tr>", section)]


def test_report_has_the_funnel_drops_and_plots(curated_dir):
    path = build_report(curated_dir)
    html = path.read_text()
    assert _funnel(html) == [("sources", 5), ("downloaded", 4), ("segments", 4), ("shots", 9), ("tracks", 11),
                             ("passed filters", 7), ("embedded", 7), ("selected", 3), ("kept", 3)]
    # one unit per table: sources/videos, then clips
    section = html.split("<h2>Funnel</h2>")[1].split("<h2>")[0]
    videos, clips = section.split("</table>")[:2]
    assert "<th>sources / videos</th>" in videos and "segments" in videos and "shots" not in videos
    assert "<th>clips</th>" in clips and "sources" not in clips and "kept" in clips
    assert "<td>MinFaceSize</td><td>face_too_small</td><td>4</td>" in html
    assert "<td>select</td><td>identity_too_few_clips</td><td>1</td>" in html
    assert "3 clips, 2 identities kept, split (clips): test 1, train 2" in html
    # clip paths are links, numbers carry units, the contact sheet is captioned
    assert '<a href="clips/' in html and "duration (s)" in html and "crop (px)" in html and "(°)" in html
    assert html.count("<figcaption>") == 3 and "id-b</b> · test" in html and "1.2 s" in html
    assert "max |yaw| 35°" in html
    # the identity counts agree, or the page says why not
    assert "clustering found 3 among 7 candidate clips; 2 keep at least one clip, 1 lost all theirs" in html
    assert "identity_too_few_clips ×1" in html
    for name in ("funnel", "pose", "face_size", "duration", "clips_per_identity", "contact_sheet"):
        png = curated_dir / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"report/{name}.png" in html
    from PIL import Image

    sheet = np.array(Image.open(curated_dir / "report" / "contact_sheet.png"))
    assert sheet.shape == (128, 3 * 128, 3)
    assert sheet.std() > 20  # real image content, not a blank tile


def test_curate_report_cli_rebuilds_it(curated_dir, tmp_path):
    (curated_dir / "report.html").unlink()
    assert curate(["report", str(curated_dir), "--quiet"]) == 0
    assert (curated_dir / "report.html").exists()
    assert curate(["report", str(tmp_path)]) == 1  # no clips.parquet: one-line error, exit 1


def test_a_new_stage_is_one_registration_run_by_the_loop_and_shown_in_the_report(curated_dir, tmp_path, monkeypatch):
    """A stage added to STAGES runs through the pipeline's loop (its summary and rejections recorded like any other
    stage's) and appears in the report's funnel, with no other edit."""
    import shutil

    from talkbench.curation import stages
    from talkbench.curation.config import CurationConfig
    from talkbench.curation.pipeline import run_stages
    from talkbench.runtime import make_executor

    out = tmp_path / "curated"
    shutil.copytree(curated_dir, out)

    def keep_frontal(run, rows):
        kept = [r for r in rows if r["yaw_max"] < 30]
        dropped = [{"stage": "frontal", "item_id": r["clip_id"], "source_id": r["source_id"], "reason": "turned",
                    "value": r["yaw_max"], "threshold": 30.0, "detail": None} for r in rows if r["yaw_max"] >= 30]
        return kept, dropped, {"frontal": len(kept)}

    toy = stages.Stage("frontal", apply=keep_frontal, funnel=(None, "frontal"))
    position = stages.stage_names().index("select") + 1
    monkeypatch.setattr(stages, "STAGES", [*stages.STAGES[:position], toy, *stages.STAGES[position:]])
    from talkbench.curation import report

    monkeypatch.setattr(report, "STAGES", stages.STAGES)
    rows = [{k: v for k, v in r.items()} for r in report._rows(out, "clips")]
    run = stages.Run(out, CurationConfig(), make_executor("local", quiet=True))
    kept = run_stages(run, rows, [toy], until="frontal")  # the loop, on the toy stage alone
    assert [r["clip_id"] for r in kept] == ["clip-0", "clip-1"]
    assert [(r["stage"], r["item_id"], r["reason"]) for r in run.rejections] == [("frontal", "clip-2", "turned")]
    summary = json.loads((out / "stats" / "frontal" / "summary.json").read_text())
    assert (summary["rows_in"], summary["rows_out"], summary["steps"][0]["dropped"]) == (3, 2, {"turned": 1})
    html = build_report(out).read_text()
    assert ("frontal", 2) in _funnel(html)
    assert _funnel(html).index(("frontal", 2)) == _funnel(html).index(("selected", 3)) + 1
