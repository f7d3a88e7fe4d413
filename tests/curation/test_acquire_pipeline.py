"""`curate build-manifest --until acquire` end to end on real media: statuses, segments, reruns, faults."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from acq_media import make_media
from talkbench.cli.curate import main as curate
from talkbench.curation.clip_pipeline import segment_rows
from talkbench.curation.config import CurationConfig
from talkbench.curation.pipeline import build_manifest
from talkbench.manifests import io as mio
from talkbench.runtime import make_executor


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(str(tmp_path_factory.getbasetemp() / "acq_media"))


@pytest.fixture(scope="module")
def server(media):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def translate_path(self, path):
            return str(media["base"].parent / path.lstrip("/"))

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _sources_csv(path: Path, media, server: str) -> Path:
    lines = [
        "url,start,end,identity",
        f"{media['base']},0.52,2.2,astronaut",
        f"{media['base']},0,1.2,astronaut",
        f"{media['base']},0,1.2,astronaut",  # duplicate row
        f"{media['vfr']},,,astronaut",
        f"{media['tenbit']},,,",
        f"{media['odd']},,,",
        f"{media['rotated']},,,",
        f"{media['noaudio']},,,",
        f"{media['truncated']},,,",
        f"{media['truncated_faststart']},,,",
        f"{media['notvideo']},,,",
        f"{server}/tenbit.mp4,1,2,web",
        f"{server}/missing.mp4,,,",
        f"{media['base']},zz,1,",  # malformed
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _sha1(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _config():
    return CurationConfig().with_overrides({"acquire.timeout": 5.0, "acquire.retries": 0})


def test_build_manifest_until_acquire(media, server, tmp_path):
    csv = _sources_csv(tmp_path / "sources.csv", media, server)
    out = tmp_path / "out"
    result = build_manifest([csv], out, _config(), make_executor("local", quiet=True), until="acquire")
    videos = {v["source_id"]: v for v in mio.read_rows(out / "videos.parquet", "videos")}
    assert result.sources == len(videos) == 11  # 14 lines - header - duplicate - malformed line
    assert result.videos == {"failed": 1, "ok": 7, "rejected": 3}
    status = {k: (v["status"], v["error_class"]) for k, v in videos.items()}
    assert status["missing"] == ("failed", "unavailable")
    assert status["truncated"] == ("rejected", "corrupt") and status["notvideo"] == ("rejected", "corrupt")
    assert status["truncated_faststart"] == ("rejected", "no_usable_segment")
    assert "expected 75 frames" in videos["truncated_faststart"]["error_message"]
    base = videos["base"]
    assert [(s["index"], s["start"], s["end"], s["n_frames"], s["path"]) for s in base["segments"]] == [
        (0, 0.0, 1.2, 30, "media/normalised/base/0.mp4"), (1, 0.52, 2.2, 42, "media/normalised/base/1.mp4")]
    assert base["download_path"] == "media/downloads/base.mp4" and base["attempts"] == 1
    assert (base["norm_fps"], base["norm_audio_rate"], base["has_audio"]) == (25.0, 16000, True)
    assert videos["noaudio"]["has_audio"] is False and videos["noaudio"]["norm_audio_rate"] is None
    assert videos["noaudio"]["status"] == "ok"
    assert (videos["rotated"]["rotation"], videos["rotated"]["norm_width"], videos["rotated"]["norm_height"]) == (
        90, 144, 176)
    assert (videos["odd"]["width"], videos["odd"]["norm_width"], videos["odd"]["norm_height"]) == (175, 174, 142)
    assert videos["vfr"]["is_vfr"] is True and videos[f"tenbit-{_sha1(str(media['tenbit']))}"]["bit_depth"] == 10
    # The local and the web tenbit.mp4 share a stem: both ids get a hash of their url/path.
    assert sorted(k for k in videos if k.startswith("tenbit")) == sorted(
        f"tenbit-{h}" for h in (_sha1(str(media["tenbit"])), _sha1(f"{server}/tenbit.mp4")))
    web = next(v for v in videos.values() if v["platform"] == "http" and v["status"] == "ok")
    assert web["segments"][0]["n_frames"] == 25 and web["download_path"].startswith("media/downloads/")
    for v in videos.values():
        for s in v["segments"] or []:
            if s["status"] == "ok":
                assert (out / s["path"]).exists()
    rejections = mio.read_rows(out / "rejections.parquet", "rejections")
    reasons = sorted((r["stage"], r["reason"]) for r in rejections)
    assert reasons == sorted([("read", "duplicate_row"), ("read", "malformed_line"), ("download", "unavailable"),
                              ("probe", "corrupt"), ("probe", "corrupt"), ("normalise", "frame_count_mismatch"),
                              ("normalise", "no_usable_segment")])
    assert (out / "sources.parquet").exists() and (out / "stats" / "acquire" / "summary.json").exists()
    summary = json.loads((out / "stats" / "acquire" / "summary.json").read_text())
    assert [s["name"] for s in summary["steps"]] == ["download", "probe", "normalise"]
    assert summary["steps"][0]["dropped"] == {"unavailable": 1}
    # Segment rows for the clip stages.
    segs = segment_rows(list(videos.values()), out)
    assert len(segs) == 8 and segs[0]["abs_path"] == str(out.resolve() / segs[0]["path"])

    # A rerun is a no-op: every rank is skipped and no manifest is rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    again = build_manifest([csv], out, _config(), make_executor("local", quiet=True), until="acquire")
    assert again.videos == result.videos
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.parquet")} == stamps


def test_rejected_local_inputs_leave_no_copy_and_no_link(media, tmp_path):
    """Issue 11.8: ``file:///etc/passwd`` got a second hard link in OUT/media/downloads; now it is copied, rejected
    as not a video, and its copy removed. The kept local video is a copy too."""
    passwd = Path("/etc/passwd")
    links_before = os.stat(passwd).st_nlink
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video at all\n")
    good = tmp_path / "good.mp4"
    good.write_bytes(media["base"].read_bytes())
    (tmp_path / "l.csv").write_text(f"url\nfile://{passwd}\n{notes}\n{good}\n")
    out = tmp_path / "out"
    build_manifest([tmp_path / "l.csv"], out, _config(), make_executor("local", quiet=True), until="acquire")
    videos = {v["source_id"]: v for v in mio.read_rows(out / "videos.parquet", "videos")}
    assert {k: (v["status"], v["error_class"]) for k, v in videos.items()} == {
        "passwd": ("rejected", "corrupt"), "notes": ("rejected", "corrupt"), "good": ("ok", None)}
    assert os.stat(passwd).st_nlink == links_before and os.stat(notes).st_nlink == 1
    assert os.stat(good).st_nlink == 1
    downloads = out / "media" / "downloads"
    assert sorted(p.name for p in downloads.iterdir() if not p.name.startswith(".")) == ["good.mp4"]
    assert os.stat(downloads / "good.mp4").st_ino != os.stat(good).st_ino
    assert videos["passwd"]["download_path"] is None and videos["notes"]["download_path"] is None
    # A rerun is still a no-op and brings no copy back.
    again = build_manifest([tmp_path / "l.csv"], out, _config(), make_executor("local", quiet=True), until="acquire")
    assert again.videos == {"ok": 1, "rejected": 2}
    assert sorted(p.name for p in downloads.iterdir() if not p.name.startswith(".")) == ["good.mp4"]


def test_ids_with_parent_references_stay_inside_out(media, tmp_path):
    (tmp_path / "l.yaml").write_text(f"- id: ../../../escaped\n  url: {media['base']}\n  end: 1\n"
                                     f"- id: sub/dir/name\n  url: {media['noaudio']}\n  end: 1\n")
    out = tmp_path / "deep" / "out"
    build_manifest([tmp_path / "l.yaml"], out, _config(), make_executor("local", quiet=True), until="acquire")
    videos = mio.read_rows(out / "videos.parquet", "videos")
    assert [v["status"] for v in videos] == ["ok", "ok"]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".mp4" and "acq_media" not in str(p)]
    assert written and all(out in p.parents for p in written)
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.glob("deep/escaped*"))


def test_a_missing_stage_dependency_fails_the_run(media, tmp_path, monkeypatch, capsys):
    """A stage that cannot import its dependency stops the run with one line and exit 1, never a silent exit 0."""
    monkeypatch.setitem(sys.modules, "talkbench.curation.scenes", None)  # `from .scenes import ...` now fails
    (tmp_path / "l.csv").write_text(f"{media['base']},0,1\n")
    code = curate(["build-manifest", str(tmp_path / "l.csv"), "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "talkbench.curation.scenes" in err
    assert (tmp_path / "o" / "videos.parquet").exists() and not (tmp_path / "o" / "clips.parquet").exists()


def test_cli_build_manifest_with_workers_and_overrides(media, tmp_path, capsys):
    (tmp_path / "l.csv").write_text(f"{media['base']},0,1\n{media['odd']},0,1\n{media['rotated']},0,1\n")
    (tmp_path / "cfg.yaml").write_text("acquire:\n  min_height: 360\n")
    args = ["build-manifest", str(tmp_path / "l.csv"), "--out", str(tmp_path / "o1"), "--until", "acquire",
            "--config", str(tmp_path / "cfg.yaml"), "--set", "acquire.retries=1"]
    assert curate(args + ["--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "3 sources → videos: 3 ok; 3 segments" in out
    assert curate(args[:3] + [str(tmp_path / "o2")] + args[4:] + ["--workers", "2", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    for name in ("videos.parquet", "rejections.parquet"):
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes()
    assert curate(args[:-2] + ["--set", "acquire.nope=1"]) == 1
    assert "unknown config key 'acquire.nope'" in capsys.readouterr().err


def test_unwritable_output_fails_cleanly(media, tmp_path, capsys):
    (tmp_path / "l.csv").write_text(f"{media['base']},0,1\n")
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "afile" / "out", Path("/proc/talkbench-out")):
        code = curate(["build-manifest", str(tmp_path / "l.csv"), "--out", str(out), "--until", "acquire", "-q"])
        err = capsys.readouterr().err.strip()
        assert code == 1 and len(err.splitlines()) == 1 and err.startswith("error: cannot write the output folder")
        assert "Traceback" not in err
    assert not list(tmp_path.rglob("*.parquet"))


def test_write_error_mid_run_leaves_no_half_written_manifest(media, tmp_path, capsys):
    (tmp_path / "l.csv").write_text(f"{media['base']},0,1\n")
    out = tmp_path / "o"
    out.mkdir()
    (out / "media").write_text("a file where the media folder should be")
    code = curate(["build-manifest", str(tmp_path / "l.csv"), "--out", str(out), "--until", "acquire", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "Not a directory" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in out.glob("*.parquet")) == ["sources.parquet"]  # videos.parquet never started
    assert not list(out.glob(".*.tmp"))


KILL_SCRIPT = """
import sys
from talkbench.cli.curate import main
sys.exit(main(["build-manifest", sys.argv[1], "--out", sys.argv[2], "--until", "acquire", "--quiet"]))
"""


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_identical_manifests(media, tmp_path):
    names = ["base", "vfr", "tenbit", "odd", "rotated", "noaudio"]
    lines = [f"{media[n]},0,2.4" for n in names] + [f"{media[n]},0.4,1.6" for n in names]
    csv = tmp_path / "l.csv"
    csv.write_text("\n".join(lines) + "\n")
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    reference, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([sys.executable, str(script), str(csv), str(reference)], check=True, env=env)

    proc = subprocess.Popen([sys.executable, str(script), str(csv), str(killed)], env=env, start_new_session=True)
    completions = killed / "stats" / "acquire" / "completions"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if completions.exists() and len(list(completions.iterdir())) >= 2:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its ffmpeg children, like kill -9 on the job
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done_before = len(list(completions.iterdir()))
    assert 2 <= done_before < 6 and not (killed / "videos.parquet").exists()

    subprocess.run([sys.executable, str(script), str(csv), str(killed)], check=True, env=env)
    for name in ("sources.parquet", "videos.parquet", "rejections.parquet"):
        assert (killed / name).read_bytes() == (reference / name).read_bytes(), name
    rows = mio.read_rows(killed / "videos.parquet", "videos")
    assert len(rows) == 6 and sum(len(r["segments"]) for r in rows) == 12
