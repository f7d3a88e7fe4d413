"""The download circuit breaker and `--retry-failed`, with the real yt-dlp against servers on 127.0.0.1 (issue 11,
points 12 and 13): a dead network or a 429 storm stops the stage after K consecutive failures across workers with one
line, keeping every finished row; a rerun with --retry-failed downloads only the temporary failures again."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest

from acq_media import make_media
from talkbench.cli.curate import main as curate
from talkbench.curation.breaker import Breaker, DownloadsStopped
from talkbench.manifests import io as mio


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the media folder; /storm/* answers 429 while ``storm`` is set, then serves the file."""

    hits: dict[str, int] = {}
    storm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        _Handler.hits[self.path] = _Handler.hits.get(self.path, 0) + 1
        if self.path.startswith("/storm/"):
            if _Handler.storm:
                self.send_error(429, "Too Many Requests")
                return
            self.path = self.path[len("/storm"):]
        return super().do_GET()

    def translate_path(self, path):
        return str(self.server.root / path.lstrip("/").split("?")[0])


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(str(tmp_path_factory.getbasetemp() / "acq_media"))


@pytest.fixture
def server(media):
    _Handler.hits.clear()
    _Handler.storm = True
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.root = media["base"].parent
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed: connection refused


def _build(capsys, sources, out, *extra) -> tuple[int, str]:
    code = curate(["build-manifest", str(sources), "--out", str(out), "--until", "acquire", "--set",
                   "acquire.timeout=5", *extra])
    return code, capsys.readouterr().err


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_dead_network_trips_the_breaker_and_keeps_finished_rows(media, tmp_path, capsys):
    port = _closed_port()
    good = tmp_path / "a_good.mp4"  # sorts first: its rank finishes before the failures
    good.write_bytes(media["base"].read_bytes())
    lines = [str(good)] + [f"http://127.0.0.1:{port}/v{i}.mp4" for i in range(8)]
    (tmp_path / "l.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code, err = _build(capsys, tmp_path / "l.csv", out, "--set", "acquire.max_consecutive_failures=3",
                       "--set", "acquire.retries=1", "--set", "acquire.backoff=0.01")
    errors = _error_lines(err)
    assert code == 1 and len(errors) == 1, err
    assert errors[0].startswith("error: network unreachable: 3 consecutive downloads failed (first: v0: ")
    assert "Connection refused" in errors[0]
    assert "check connectivity, --proxy or --cookies-file" in errors[0]
    # Not on a terminal: progress lines were printed.
    assert "download: 3 of 9 finished, 0 ok, 3 failed (3 network)" in err
    state = json.loads((out / "stats" / "acquire" / "downloads.json").read_text())
    assert (state["done"], state["failed"], state["streak"]) == (3, {"network": 3}, 3)  # v3…v7 never started
    # Finished rows are kept: the local copy and the two failures before the trip are complete ranks; the third
    # failure (after the trip) is not, so it is tried again.
    done = sorted(p.name for p in (out / "stats" / "acquire" / "completions").iterdir())
    assert done == ["00000", "00001", "00002"]
    assert not (out / "videos.parquet").exists()


def test_429_storm_backs_off_globally_across_workers_then_stops(media, server, tmp_path, capsys):
    good = tmp_path / "a_good.mp4"
    good.write_bytes(media["base"].read_bytes())
    lines = [str(good)] + [f"{server}/storm/v{i}.mp4" for i in range(10)]
    (tmp_path / "l.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    code, err = _build(capsys, tmp_path / "l.csv", out, "--workers", "2", "--set",
                       "acquire.max_consecutive_failures=4", "--set", "acquire.retries=1", "--set",
                       "acquire.backoff=0.2")
    errors = _error_lines(err)
    assert code == 1 and len(errors) == 1, err
    assert errors[0].startswith("error: rate limited: 4 consecutive answers were rate limits although every worker "
                                "backed off (pauses up to 0.4 s) (first: v")
    assert "HTTP Error 429" in errors[0] and "--retry-failed" in errors[0]
    # Every refusal paused every worker, and it said so.
    assert "download: rate_limited answer for v" in err and "every worker waits 0.2 s" in err
    assert "every worker waits 0.4 s" in err
    # One count for both worker processes: per-process counters would need 4 answers each (8 requests).
    storm_hits = sum(n for path, n in _Handler.hits.items() if path.startswith("/storm/"))
    assert 4 <= storm_hits <= 5, _Handler.hits
    assert err.count("every worker waits") == storm_hits  # each refusal announced once
    assert len({p for p in _Handler.hits if p.startswith("/storm/")}) < 10  # most were never asked for


def test_breaker_state_is_one_count_for_every_process(tmp_path):
    """Two Breaker objects (as in two worker processes) share the file; a new build's token starts afresh."""
    path = str(tmp_path / "downloads.json")
    a, b = Breaker(path, "run1", threshold=3), Breaker(path, "run1", threshold=3)
    a.finished("x", "failed", "network", "Connection refused")
    b.finished("y", "failed", "network", "Connection refused")
    a.finished("z", "failed", "unavailable", "HTTP Error 404")  # the network works: the streak restarts
    assert b.read()["streak"] == 0
    for sid in ("p", "q"):
        a.finished(sid, "failed", "network", "Connection refused")
    b.check()
    b.finished("r", "failed", "network", "Connection refused")
    with pytest.raises(DownloadsStopped, match=r"^network unreachable: 3 consecutive downloads failed \(first: p: "):
        a.check()
    fresh = Breaker(path, "run2", threshold=3)
    fresh.check()  # another build: the old trip does not carry over
    assert fresh.read()["done"] == 0


def test_retry_failed_downloads_only_temporary_failures_again(media, server, tmp_path, capsys):
    good = tmp_path / "a_good.mp4"
    good.write_bytes(media["base"].read_bytes())
    (tmp_path / "l.csv").write_text(f"{good},0,1\n{server}/storm/base.mp4,0,1\n{server}/missing.mp4\n")
    out = tmp_path / "out"
    args = ["--set", "acquire.retries=0", "--set", "acquire.min_height=0"]
    assert _build(capsys, tmp_path / "l.csv", out, *args)[0] == 0
    first = {v["source_id"]: v for v in mio.read_rows(out / "videos.parquet", "videos")}
    assert {k: (v["status"], v["error_class"]) for k, v in first.items()} == {
        "a_good": ("ok", None), "base": ("failed", "rate_limited"), "missing": ("failed", "unavailable")}
    segment = out / first["a_good"]["segments"][0]["path"]
    before = {"segment": (segment.read_bytes(), segment.stat().st_mtime_ns),
              "sources": (out / "sources.parquet").read_bytes()}
    rejections = mio.read_rows(out / "rejections.parquet", "rejections")
    hits = dict(_Handler.hits)

    _Handler.storm = False  # the server is healthy again
    assert _build(capsys, tmp_path / "l.csv", out, *args)[0] == 0  # a plain rerun keeps the failure
    assert mio.read_rows(out / "videos.parquet", "videos")[1]["status"] == "failed" and _Handler.hits == hits

    code, err = _build(capsys, tmp_path / "l.csv", out, *args, "--retry-failed")
    assert code == 0, err
    assert "--retry-failed: 1 sources failed with network or rate_limited and are downloaded again (base)" in err
    again = {v["source_id"]: v for v in mio.read_rows(out / "videos.parquet", "videos")}
    assert (again["base"]["status"], again["base"]["segments"][0]["n_frames"]) == ("ok", 25)
    assert again["a_good"] == first["a_good"] and again["missing"] == first["missing"]
    assert _Handler.hits["/missing.mp4"] == hits["/missing.mp4"]  # a permanent failure is not asked again
    assert (segment.read_bytes(), segment.stat().st_mtime_ns) == before["segment"]
    assert (out / "sources.parquet").read_bytes() == before["sources"]
    assert mio.read_rows(out / "rejections.parquet", "rejections") == [r for r in rejections
                                                                         if r["source_id"] != "base"]
