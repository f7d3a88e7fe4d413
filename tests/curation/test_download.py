"""The real yt-dlp against a local HTTP server on 127.0.0.1: direct mp4, 404, dropped connections, 429 + backoff."""

from __future__ import annotations

import http.server
import os
import threading

import pytest

from acq_media import make_media
from talkbench.curation.download import (
    DownloadOptions,
    OutputWriteError,
    classify_error,
    download_url,
    fetch_source,
    format_selector,
    copy_local,
)
from talkbench.media import sha256_file


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the media folder, plus scripted failures: /drop/* closes the socket, /limit/N/* answers 429 N times."""

    hits: dict[str, int] = {}
    headers_seen: dict[str, dict] = {}
    release = threading.Event()  # /hang/* waits on this until the module's tests are done

    def log_message(self, *args):
        pass

    def do_GET(self):
        proxied = self.path.startswith("http://")
        if proxied:  # a proxy request carries the absolute url; serve it like the origin would, and record it
            self.path = "/proxied/" + self.path.split("/", 3)[3]
        _Handler.hits[self.path] = _Handler.hits.get(self.path, 0) + 1
        _Handler.headers_seen[self.path] = dict(self.headers)
        if self.path.startswith("/proxied/"):
            self.path = self.path[len("/proxied"):]
        if self.path.startswith("/hang/"):
            _Handler.release.wait(30)  # accept the connection, never answer
            return
        if self.path.startswith("/cookie/"):
            if "session=letmein" not in self.headers.get("Cookie", ""):
                self.send_error(403, "Forbidden")
                return
            self.path = self.path[len("/cookie"):]
        if self.path.startswith("/drop/"):
            self.connection.close()  # no status line at all
            return
        if self.path.startswith("/short/"):
            # Promise the whole file, send a third of it, hang up.
            data = (self.server.root / "base.mp4").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 3])
            self.wfile.flush()
            self.connection.close()
            return
        if self.path.startswith("/limit/"):
            _, _, n, rest = self.path.split("/", 3)
            if _Handler.hits[self.path] <= int(n):
                self.send_error(429, "Too Many Requests")
                return
            if rest.startswith("gone"):
                self.send_error(404, "Not Found")
                return
            self.path = "/" + rest
        return super().do_GET()

    def translate_path(self, path):
        return str(self.server.root / path.lstrip("/").split("?")[0])


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(str(tmp_path_factory.getbasetemp() / "acq_media"))


@pytest.fixture(scope="module")
def server(media):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.root = media["base"].parent
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    _Handler.release.set()
    srv.shutdown()
    srv.server_close()


def _opts(**kw):
    base = dict(min_height=720, timeout=5.0, retries=2, backoff=0.5)
    base.update(kw)
    return DownloadOptions(**base)


class _Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)  # record the backoff instead of waiting it out


def test_direct_mp4_passes_the_height_floor(server, media, tmp_path):
    assert format_selector(720) == "bv*[height>=?720]+ba/b[height>=?720]"
    result = download_url(f"{server}/base.mp4", tmp_path, "clip", _opts(), tmp_path / "archive.txt")
    assert (result.status, result.attempts, result.error_message) == ("ok", 1, None)
    assert result.path == tmp_path / "clip.mp4"
    assert sha256_file(result.path) == sha256_file(media["base"])
    assert (tmp_path / "archive.txt").read_text().split() == ["generic", "base"]
    # Skip on rerun: the finished file is reused, yt-dlp is not called.
    again = download_url(f"{server}/base.mp4", tmp_path, "clip", _opts(), tmp_path / "archive.txt")
    assert (again.status, again.attempts, again.path) == ("ok", 0, result.path)


def test_archive_entry_without_file_downloads_again(server, tmp_path):
    (tmp_path / "archive.txt").write_text("generic noaudio\n")
    result = download_url(f"{server}/noaudio.mp4", tmp_path, "n", _opts(), tmp_path / "archive.txt")
    assert result.status == "ok" and result.path.exists() and result.attempts == 1


def test_404_is_unavailable_and_not_retried(server, tmp_path):
    sleeps = _Sleeps()
    result = download_url(f"{server}/missing.mp4", tmp_path, "m", _opts(), None, sleep=sleeps)
    assert (result.status, result.error_class, result.attempts) == ("failed", "unavailable", 1)
    assert "HTTP Error 404" in result.error_message and sleeps == []
    assert not list(tmp_path.iterdir())


def test_dropped_connection_is_network_retried_with_backoff(server, tmp_path):
    sleeps = _Sleeps()
    result = download_url(f"{server}/drop/base.mp4", tmp_path, "d", _opts(retries=3), None, sleep=sleeps)
    assert (result.status, result.error_class, result.attempts) == ("failed", "network", 4)
    assert "Remote end closed connection" in result.error_message
    assert sleeps == [0.5, 1.0, 2.0]  # exponential backoff between the 4 attempts
    assert _Handler.hits["/drop/base.mp4"] == 4


def test_short_body_is_network(server, tmp_path):
    sleeps = _Sleeps()
    result = download_url(f"{server}/short/base.mp4", tmp_path, "s", _opts(retries=1), None, sleep=sleeps)
    assert (result.status, result.error_class, result.attempts) == ("failed", "network", 2)
    assert sleeps == [0.5]


def test_rate_limit_then_success(server, media, tmp_path):
    sleeps = _Sleeps()
    result = download_url(f"{server}/limit/1/base.mp4", tmp_path, "r", _opts(), None, sleep=sleeps)
    assert (result.status, result.attempts, sleeps) == ("ok", 2, [0.5])
    assert sha256_file(result.path) == sha256_file(media["base"])


def test_first_error_is_kept_when_a_retry_fails_differently(server, tmp_path):
    result = download_url(f"{server}/limit/1/gone.mp4", tmp_path, "g", _opts(), None, sleep=_Sleeps())
    assert (result.status, result.error_class, result.attempts) == ("failed", "rate_limited", 2)
    assert "HTTP Error 429" in result.error_message  # the original error...
    assert "HTTP Error 404" in result.last_error  # ...and the later one only beside it


@pytest.mark.parametrize("message, cls", [
    ("[youtube] abc: Video unavailable. This video has been removed by the uploader", "unavailable"),
    ("[youtube] abc: Private video. Sign in if you've been granted access to this video", "private"),
    ("[youtube] abc: Sign in to confirm you're not a bot. Use --cookies-from-browser", "bot_check"),
    ("[youtube] abc: Sign in to confirm you’re not a bot", "bot_check"),
    ("Unable to download webpage: HTTP Error 429: Too Many Requests", "rate_limited"),
    ("[youtube] abc: The uploader has not made this video available in your country", "geo"),
    ("[youtube] abc: Requested format is not available. Use --list-formats", "format"),
    ("Unable to download webpage: <urlopen error [Errno -3] Temporary failure in name resolution>", "network"),
    ("Read timed out.", "network"),
    ("HTTP Error 503: Service Unavailable", "network"),
    ("Something odd happened", "other"),
])
def test_error_classes(message, cls):
    assert classify_error(message) == cls


def test_local_sources_are_copied_never_linked(media, tmp_path):
    """Issue 11.8: a hard link gave the source (``file:///etc/passwd`` too) a second name inside OUT."""
    src = tmp_path / "src" / "base.mp4"
    src.parent.mkdir()
    src.write_bytes(media["base"].read_bytes())
    assert os.stat(src).st_nlink == 1
    row = {"source_id": "local", "local_path": str(src), "url": None}
    result = fetch_source(row, tmp_path / "out", _opts())
    assert (result.status, result.attempts) == ("ok", 1)
    assert result.path == tmp_path / "out" / "media" / "downloads" / "local.mp4"
    assert os.stat(src).st_nlink == 1 and os.stat(result.path).st_nlink == 1
    assert os.stat(result.path).st_ino != os.stat(src).st_ino and not result.path.is_symlink()
    assert sha256_file(result.path) == sha256_file(src)
    # The copy is independent: changing it never touches the source.
    with open(result.path, "r+b") as fh:
        fh.write(b"\0\0\0\0")
    assert sha256_file(src) == sha256_file(media["base"])
    copy = copy_local(src, tmp_path / "copy.mp4")
    assert os.stat(copy).st_ino != os.stat(src).st_ino and sha256_file(copy) == sha256_file(src)
    assert os.stat(src).st_nlink == 1
    missing = fetch_source({"source_id": "gone", "local_path": str(tmp_path / "nope.mp4"), "url": None}, tmp_path,
                           _opts())
    assert (missing.status, missing.error_class) == ("failed", "unavailable")


def test_unwritable_download_folder_stops_the_run(server, tmp_path):
    (tmp_path / "blocker").write_text("a file where the output folder should be")
    with pytest.raises(OutputWriteError, match="Not a directory"):
        fetch_source({"source_id": "x", "local_path": None, "url": f"{server}/base.mp4"}, tmp_path / "blocker",
                     _opts())


def test_socket_timeout_applies_to_every_call(server, tmp_path):
    result = download_url(f"{server}/hang/base.mp4", tmp_path, "h", _opts(timeout=1.0, retries=0), None)
    assert (result.status, result.error_class, result.attempts) == ("failed", "network", 1)
    assert "timed out" in result.error_message


def test_cookies_file_is_sent(server, media, tmp_path):
    host_port = server.split("//")[1]
    host = host_port.split(":")[0]
    jar = tmp_path / "cookies.txt"
    jar.write_text("# Netscape HTTP Cookie File\n"
                   f"{host}\tFALSE\t/\tFALSE\t0\tsession\tletmein\n")
    refused = download_url(f"{server}/cookie/base.mp4", tmp_path / "a", "c", _opts(), None)
    assert (refused.status, refused.error_class) == ("failed", "bot_check")  # 403 without the cookie
    result = download_url(f"{server}/cookie/base.mp4", tmp_path / "b", "c", _opts(cookies_file=str(jar)), None)
    assert result.status == "ok" and sha256_file(result.path) == sha256_file(media["base"])


def test_proxy_is_used(server, media, tmp_path):
    # The test server doubles as an HTTP proxy: a proxied request arrives with the absolute url as its path.
    origin = "http://talkbench-origin.invalid/base.mp4"  # unresolvable: only the proxy can fetch it
    result = download_url(origin, tmp_path, "p", _opts(proxy=server), None)
    assert result.status == "ok" and sha256_file(result.path) == sha256_file(media["base"])
    assert _Handler.hits.get("/proxied/base.mp4", 0) >= 1


def test_rate_limit_backs_off_globally_through_the_breaker(server, media, tmp_path):
    """With the breaker, a 429 pauses every worker (shared state) instead of sleeping for this video alone."""
    import time

    from talkbench.curation.breaker import Breaker, DownloadsStopped

    breaker = Breaker(str(tmp_path / "downloads.json"), "run", threshold=10, backoff=0.05, max_pause=0.1)
    waited = []

    def sleep(seconds):
        waited.append(seconds)
        time.sleep(seconds)

    result = download_url(f"{server}/limit/2/base.mp4", tmp_path / "d", "g", _opts(retries=2, backoff=5.0), None,
                          sleep=sleep, breaker=breaker)
    assert (result.status, result.attempts) == ("ok", 3)
    state = breaker.read()
    assert [p["seconds"] for p in state["pause_log"]] == [0.05, 0.1]  # doubled per refusal, capped
    assert state["answers"] == 0  # the success reset the count
    assert waited and max(waited) <= 0.1  # never the per-video backoff (5 s)
    # Bot checks count the same way and trip with their own line.
    strict = Breaker(breaker.path, "run", threshold=3, backoff=0.01, max_pause=0.01)
    for sid in "abc":
        strict.answer(sid, "bot_check", "Sign in to confirm you're not a bot")
    with pytest.raises(DownloadsStopped, match=r"^bot check: 3 consecutive downloads were refused as a bot .*"
                                               r"\(first: a: Sign in to confirm you're not a bot\); pass --cookies-file"):
        breaker.check()
