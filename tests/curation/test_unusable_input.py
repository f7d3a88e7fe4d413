"""`curate build-manifest` on input that yields nothing usable exits non-zero with one line saying why, and still
writes the manifests and rejections it has (issue 11, point 11: it used to exit 0 with "0 clips")."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from acq_media import make_media
from talkbench.cli.curate import main as curate
from talkbench.manifests import io as mio


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(str(tmp_path_factory.getbasetemp() / "acq_media"))


def _run(capsys, *args) -> tuple[int, str]:
    code = curate(["build-manifest", *map(str, args), "--set", "acquire.retries=0"])
    err = capsys.readouterr().err.strip()
    return code, err


def _parquet_without_url(path):
    pq.write_table(pa.table({"link": ["https://www.youtube.com/watch?v=dQw4w9WgXcQ"], "start": [0.0]}), path)
    return path


def _file(name, text):
    def make(d):
        (d / name).write_text(text)
        return d / name
    return make


def _folder_without_videos(d):
    (d / "vids").mkdir()
    (d / "vids" / "notes.txt").write_text("not a video")
    return d / "vids"


@pytest.mark.parametrize("make, why", [
    (_file("empty.csv", ""), "empty.csv is empty"),
    (_file("head.csv", "url,start,end,identity\n"), "head.csv has a header line but no rows"),
    (_folder_without_videos, "vids holds no video files"),
    (lambda d: _parquet_without_url(d / "list.parquet"), "list.parquet has no 'url' or 'path' column (columns: link, start)"),
])
def test_input_without_sources_fails_before_any_output(tmp_path, capsys, make, why):
    src = make(tmp_path)
    out = tmp_path / "out"
    code, err = _run(capsys, src, "--out", out)
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and why in err, err
    assert not out.exists()
    # `curate sources` says the same.
    assert curate(["sources", str(src), "--out", str(tmp_path / "s.parquet")]) == 1
    assert why in capsys.readouterr().err and not (tmp_path / "s.parquet").exists()


def test_every_line_skipped_writes_the_rejections_then_fails(tmp_path, capsys):
    (tmp_path / "l.csv").write_text("url,start,end\nclip.mp4,5,1\nclip.mp4,zz,2\n")
    out = tmp_path / "out"
    code, err = _run(capsys, tmp_path / "l.csv", "--out", out, "--until", "acquire")
    assert err.splitlines()[:2] == ["skipped l.csv:2: end 1.0 is not after start 5.0 ('clip.mp4,5,1')",
                                    "skipped l.csv:3: bad time 'zz'; expected seconds, mm:ss or hh:mm:ss "
                                    "('clip.mp4,zz,2')"]
    err = err.splitlines()[-1]
    assert code == 1 and len([l for l in err.splitlines() if l.startswith("error")]) == 1, err
    assert "no usable sources: all 2 lines of the source lists were skipped" in err
    assert "first: l.csv:2: end 1.0 is not after start 5.0" in err and str(out / "rejections.parquet") in err
    assert mio.read_rows(out / "sources.parquet", "sources") == []
    assert [r["reason"] for r in mio.read_rows(out / "rejections.parquet", "rejections")] == ["malformed_line"] * 2


@pytest.mark.parametrize("until", ["acquire", "all"])
def test_every_source_failing_writes_the_manifests_then_fails(media, tmp_path, capsys, until):
    (tmp_path / "l.csv").write_text(f"{tmp_path / 'gone1.mp4'}\n{tmp_path / 'gone2.mp4'}\n{media['notvideo']}\n")
    out = tmp_path / "out"
    code, err = _run(capsys, tmp_path / "l.csv", "--out", out, "--until", until)
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "no usable video: all 3 sources failed (2 unavailable, 1 corrupt; first: gone1: no such file" in err
    videos = mio.read_rows(out / "videos.parquet", "videos")
    assert sorted((v["source_id"], v["status"], v["error_class"]) for v in videos) == [
        ("gone1", "failed", "unavailable"), ("gone2", "failed", "unavailable"), ("notvideo", "rejected", "corrupt")]
    assert len(mio.read_rows(out / "rejections.parquet", "rejections")) == 3


def test_a_usable_list_still_exits_zero(media, tmp_path, capsys):
    (tmp_path / "l.csv").write_text(f"{media['base']},0,1\n{tmp_path / 'gone.mp4'}\n")
    code, err = _run(capsys, tmp_path / "l.csv", "--out", tmp_path / "out", "--until", "acquire")
    assert code == 0 and err == ""


def test_no_clip_surviving_the_filters_fails_with_the_drop_reasons(media, tmp_path, capsys):
    """The astronaut clip is real but small (176×144): its face is far below the 256 px floor, so nothing is kept."""
    (tmp_path / "l.csv").write_text(f"{media['base']},0,2.4,astronaut\n")
    out = tmp_path / "out"
    code, err = _run(capsys, tmp_path / "l.csv", "--out", out, "-q")
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("error: no clips: every candidate clip was dropped (") and "see " in err
    reasons = {r["reason"] for r in mio.read_rows(out / "rejections.parquet", "rejections")}
    assert any(reason in err for reason in reasons)
    assert mio.read_rows(out / "clips.parquet", "clips") == []
