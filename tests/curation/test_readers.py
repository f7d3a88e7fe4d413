"""Source readers on the real HDTF metadata and on hand-written CSV/Parquet/YAML lists."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from talkbench.cli.curate import main as curate
from talkbench.curation.readers import (
    detect_format,
    issues_as_rejections,
    parse_time,
    read_sources,
    sanitise_id,
    youtube_id,
)
from talkbench.errors import SourceListError
from talkbench.manifests import io as mio

HDTF = Path("/work/shared/data/hdtf")


@pytest.fixture(scope="module")
def hdtf():
    if not HDTF.exists():
        pytest.skip("HDTF metadata folder not present")
    rows, issues = read_sources([HDTF])
    return {r["source_id"]: r for r in rows}, issues


def test_hdtf_counts(hdtf):
    rows, issues = hdtf
    # 370 url lines. Radio24 has no annotation line, leaving the README's 369 videos and 436 spans; and two of
    # those are one YouTube video (WhipJimClyburn, line 13, and JamesClyburn1, line 122: gh3YqnvNdio, same span
    # 00:05-04:40), merged so the same person is not downloaded twice under two labels: 368 videos, 435 spans.
    assert len(rows) == 368
    assert sum(len(r["spans"]) for r in rows.values()) == 435
    assert {r["dataset"] for r in rows.values()} == {"hdtf"}
    assert {r["licence"] for r in rows.values()} == {"CC BY 4.0"}
    assert sorted((str(i), i.kind) for i in issues) == [
        ("RD_video_url.txt:24: video 'Radio24' has no line in RD_annotion_time.txt", "no_spans"),
        ("WDA_video_url.txt:122: duplicate of youtube:gh3YqnvNdio", "duplicate_row"),
        ("WDA_video_url.txt:122: identity 'JamesClyburn1' conflicts with 'WhipJimClyburn'; keeping the first "
         "(WDA_video_url.txt:122 is ignored)", "identity_conflict"),
    ]
    assert "JamesClyburn1" not in rows and rows["WhipJimClyburn"]["list_line"] == 13
    assert sum(1 for r in rows.values() for s in r["spans"] if s["crop_w"] is None) == 15  # spans without crop lines
    heights = Counter(r["ref_height"] for r in rows.values())
    assert heights[1080] == 198 and heights[720] == 165 and heights[None] == 1  # KevinMcCarthy1 lists 0
    assert {h for h in heights if h not in (720, 1080, None)} == {360, 700, 714, 2160}


def test_hdtf_links_spans_crops_and_resolution(hdtf):
    rows, _ = hdtf
    r = rows["Radio11"]
    assert r["url"] == "https://www.youtube.com/watch?v=XtySvTwIOfw" and r["platform"] == "youtube"
    assert r["source_label"] == "Radio11" and r["video_id"] == "Radio11"
    assert (r["ref_width"], r["ref_height"]) == (None, 720)
    assert [(s["index"], s["start"], s["end"]) for s in r["spans"]] == [(0, 30.0, 60.0), (1, 90.0, 150.0)]
    assert [(s["crop_x"], s["crop_w"], s["crop_y"], s["crop_h"], s["crop_ratio"]) for s in r["spans"]] == [
        (412, 599, 0, 599, 1.2), (557, 478, 0, 478, 1.2)]
    assert r["list_file"].endswith("RD_video_url.txt") and r["list_line"] == 11
    # The byte-order mark does not leak into the first name of WDA_video_url.txt.
    assert rows["CarolynMaloney2"]["list_line"] == 1
    assert not any("\ufeff" in k for k in rows)
    # Trailing spaces on annotation lines do not add spans.
    assert [(s["start"], s["end"]) for s in rows["AdamKinzinger2"]["spans"]] == [(40.0, 80.0), (120.0, 160.0),
                                                                                 (210.0, 230.0)]
    assert rows["AdamSchiff"]["ref_height"] == 1080
    assert rows["Radio15"]["spans"][0]["crop_w"] is None  # no crop_wh line for Radio15_0


def test_hdtf_rows_fit_the_sources_schema(hdtf, tmp_path):
    rows, _ = hdtf
    mio.write_table(list(rows.values()), tmp_path / "s.parquet", "sources")
    back = mio.read_rows(tmp_path / "s.parquet", "sources")
    assert len(back) == 368 and back[0]["source_id"] < back[-1]["source_id"]


def test_sanitise_id_never_escapes():
    for raw in ["../../etc/passwd", "a/b", "..", ".hidden", "a\\b", "x y", "/abs", "", "é"]:
        sid = sanitise_id(raw)
        assert sid and "/" not in sid and "\\" not in sid and not sid.startswith(".")
        assert sid != raw
    assert sanitise_id("../x") != sanitise_id("x") == "x"
    assert sanitise_id("Radio11") == "Radio11" and sanitise_id("ok-1.2_a") == "ok-1.2_a"
    assert sanitise_id("../../etc/passwd").startswith("etc_passwd-")


def test_time_and_url_parsing():
    assert parse_time("01:30") == 90.0 and parse_time("1:02:03.5") == 3723.5 and parse_time(4) == 4.0
    assert parse_time("") is None and parse_time(None) is None
    for bad in ("1:2:3:4", "ab", "-3", "1:-2"):
        with pytest.raises(ValueError):
            parse_time(bad)
    assert youtube_id("https://www.youtube.com/watch?v=uBWJJvynXpA&t=6s") == "uBWJJvynXpA"
    assert youtube_id("https://youtu.be/abc123") == "abc123" and youtube_id("https://example.org/a.mp4") is None


CSV = """url,start,end,identity
https://www.youtube.com/watch?v=AAA,00:10,00:20,alice
https://www.youtube.com/watch?v=AAA,00:10,00:20,alice
https://www.youtube.com/watch?v=AAA,5,8,alice
https://www.youtube.com/watch?v=BBB,,,bob
http://127.0.0.1:9/clip.mp4,1.5,zz,carol
http://127.0.0.1:9/clip.mp4,3,2,carol
,1,2,nobody
https://www.youtube.com/watch?v=CCC,1,2,dave,extra
videos/local one.mp4,,,erin
"""


def test_csv_table_merges_dedups_and_reports_bad_lines(tmp_path):
    (tmp_path / "list.csv").write_text(CSV)
    rows, issues = read_sources([tmp_path / "list.csv"])
    by_id = {r["source_id"]: r for r in rows}
    assert sorted(by_id) == ["AAA", "BBB", "local_one-" + sanitise_id("local one").split("-")[-1]]
    # Two rows of AAA merged; the exact duplicate dropped; spans numbered in time order.
    assert [(s["index"], s["start"], s["end"]) for s in by_id["AAA"]["spans"]] == [(0, 5.0, 8.0), (1, 10.0, 20.0)]
    assert by_id["AAA"]["source_label"] == "alice" and by_id["AAA"]["list_line"] == 2
    assert by_id["BBB"]["spans"] == []  # whole video
    local = next(r for r in rows if r["platform"] == "local")
    assert local["url"] is None and local["local_path"] == str((tmp_path / "videos" / "local one.mp4").resolve())
    where = sorted((i.line, i.kind) for i in issues)
    assert where == [(3, "duplicate_row"), (6, "malformed_line"), (7, "malformed_line"), (8, "malformed_line"),
                     (9, "malformed_line")]
    messages = {i.line: str(i) for i in issues}
    assert messages[6].startswith("list.csv:6: bad time 'zz'")
    assert "end 2.0 is not after start 3.0" in messages[7]
    assert "no url" in messages[8]
    rej = issues_as_rejections(issues)
    assert {r["item_id"] for r in rej} == {"list.csv:3", "list.csv:6", "list.csv:7", "list.csv:8", "list.csv:9"}
    assert json.loads(rej[0]["detail"])["message"]


def test_dedup_is_independent_of_line_order(tmp_path):
    lines = CSV.strip().splitlines()
    (tmp_path / "a.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "b.csv").write_text("\n".join([lines[0]] + lines[1:][::-1]) + "\n")
    a, _ = read_sources([tmp_path / "a.csv"])
    b, _ = read_sources([tmp_path / "b.csv"])
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("list_file", "list_line")} for r in rows]  # noqa
    assert strip(a) == strip(b)


def test_headerless_csv_and_id_collisions(tmp_path):
    (tmp_path / "x.csv").write_text("http://a.example/v/clip.mp4\nhttp://b.example/w/clip.mp4,1,3,zed\n")
    rows, issues = read_sources([tmp_path / "x.csv"])
    assert not issues
    ids = [r["source_id"] for r in rows]
    # Both stems are "clip": each gets a hash of its url, whatever the order.
    assert len(set(ids)) == 2 and all(i.startswith("clip-") for i in ids)
    assert [r["spans"] for r in rows if r["url"].startswith("http://b.")][0][0]["start"] == 1.0


def test_parquet_and_yaml_tables(tmp_path):
    pq.write_table(pa.table({"url": ["https://youtu.be/P1", None, "https://youtu.be/P2"], "start": [1.0, 2.0, None],
                             "end": [4.0, 3.0, None], "identity": ["p", "q", None]}), tmp_path / "l.parquet")
    rows, issues = read_sources([tmp_path / "l.parquet"])
    assert [r["source_id"] for r in rows] == ["P1", "P2"]
    assert [str(i) for i in issues] == ["l.parquet:2: no url"]
    (tmp_path / "l.yaml").write_text("sources:\n  - url: https://youtu.be/Y1\n    start: '00:01'\n    end: 3\n"
                                     "  - https://youtu.be/Y2\n  - url: https://youtu.be/Y3\n    start: nope\n"
                                     "  - id: ../../escape\n    url: https://example.org/e.mp4\n")
    rows, issues = read_sources([tmp_path / "l.yaml"])
    assert [str(i) for i in issues] == ["l.yaml:6: bad time 'nope'; expected seconds, mm:ss or hh:mm:ss"]
    by_vid = {r["video_id"]: r for r in rows}
    assert by_vid["Y1"]["spans"][0]["start"] == 1.0 and by_vid["Y2"]["spans"] == []
    assert by_vid["../../escape"]["source_id"].startswith("escape-")


def test_folder_reader_and_format_detection(tmp_path):
    (tmp_path / "vids" / "sub").mkdir(parents=True)
    for name in ("b.mp4", "a.MOV", "sub/c.mkv", "notes.txt", ".hidden.mp4"):
        (tmp_path / "vids" / name).write_bytes(b"x")
    rows, issues = read_sources([tmp_path / "vids"])
    assert [(r["source_id"], r["dataset"], r["platform"]) for r in rows] == [
        ("a", "folder", "local"), ("b", "folder", "local"), (f"sub_c-{sanitise_id('sub/c').split('-')[-1]}",
                                                              "folder", "local")]
    assert detect_format(tmp_path / "vids") == "folder" and detect_format(tmp_path / "x.yaml") == "table"
    if HDTF.exists():
        assert detect_format(HDTF) == "hdtf"
    (tmp_path / "list.txt").write_text("x")
    with pytest.raises(SourceListError, match="--format"):
        read_sources([tmp_path / "list.txt"])
    with pytest.raises(SourceListError, match="no such file"):
        read_sources([tmp_path / "missing.csv"])
    with pytest.raises(ValueError, match="unknown source format 'xml'"):
        read_sources([tmp_path / "vids"], fmt="xml")
    # --format forces a reader: a .txt url list read as a table.
    (tmp_path / "list.txt").write_text("url\nhttps://youtu.be/T1\n")
    assert [r["source_id"] for r in read_sources([tmp_path / "list.txt"], fmt="table")[0]] == ["T1"]


def test_curate_sources_cli(tmp_path, capsys, hdtf):
    (tmp_path / "list.csv").write_text(CSV)
    out = tmp_path / "sources.parquet"
    assert curate(["sources", str(HDTF), str(tmp_path / "list.csv"), "--out", str(out)]) == 0
    text = capsys.readouterr()
    assert "371 sources" in text.out and "skipped RD_video_url.txt:24" in text.err
    table = mio.read_table(out, "sources")
    assert table.num_rows == 371
    before = out.read_bytes()
    assert curate(["sources", str(HDTF), str(tmp_path / "list.csv"), "--out", str(out), "--quiet"]) == 0
    assert out.read_bytes() == before
    assert capsys.readouterr().out == ""


def test_a_youtube_video_listed_twice_in_different_url_forms_is_one_source(hdtf, tmp_path):
    (tmp_path / "extra.csv").write_text("url,start,end,identity\n"
                                        "https://youtu.be/XtySvTwIOfw,200,210,radio-host\n"
                                        "https://www.youtube.com/watch?v=XtySvTwIOfw&t=30s,00:30,01:00,\n")
    rows, issues = read_sources([HDTF, tmp_path / "extra.csv"])
    assert len(rows) == 368
    radio11 = next(r for r in rows if r["source_id"] == "Radio11")
    assert [(s["index"], s["start"], s["end"]) for s in radio11["spans"]] == [(0, 30.0, 60.0), (1, 90.0, 150.0),
                                                                             (2, 200.0, 210.0)]
    assert radio11["source_label"] == "Radio11" and radio11["dataset"] == "hdtf"
    extra = sorted(i.kind for i in issues if i.file == "extra.csv")
    assert extra == ["duplicate_row", "identity_conflict"]
