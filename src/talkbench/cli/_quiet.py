"""Silence the native libraries' log lines (MediaPipe's absl/glog, TensorFlow Lite) in the CLI and its workers.

MediaPipe 0.10 logs through absl, which ignores ``GLOG_minloglevel``, and TensorFlow Lite prints
``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` with a bare ``fprintf(stderr)``; environment variables
cannot reach either. So the CLI points file descriptor 2 at a pipe, and a thread copies every line to the real
stderr except these log lines. Worker processes (spawned pools, DataLoader workers, ffmpeg) inherit descriptor 2, so
their native lines are filtered by the same thread; Python's own ``sys.stderr`` writes straight to the terminal, so
progress bars and errors are neither delayed nor reordered.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# I/W lines in glog/absl format ("W0000 00:00:1795.636175   29876 file.cc:114] ..."), absl's preamble and TFLite's
# delegate notice. E/F lines (errors, fatal) pass through. TFLite writes its notice in three calls ("INFO: ", the
# message, the newline), so two worker processes starting at once can interleave them into "INFO: INFO: Created …"
# and a bare "Created …" line (seen in a CI-like run): the prefix is optional and may repeat.
NOISE = re.compile(
    rb"^(?:[IW]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w./-]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|(?:INFO: )*Created TensorFlow Lite (?:XNNPACK )?delegate"
    rb"|(?:INFO: )*Initialized TensorFlow Lite runtime)")

_state: dict = {}


def is_noise(line: bytes) -> bool:
    return NOISE.match(line) is not None


def _pump(read_fd: int, write_fd: int) -> None:
    buf = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        keep = b"".join(line + b"\n" for line in lines if not is_noise(line))
        if keep:
            os.write(write_fd, keep)
    if buf and not is_noise(buf):
        os.write(write_fd, buf)


def silence_native_logs() -> None:
    """Filter descriptor 2 for this process and its children (idempotent; a no-op when stderr has no descriptor)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if _state or os.environ.get("TALKBENCH_NATIVE_LOGS") == "1":
        return
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    thread = threading.Thread(target=_pump, args=(read_fd, real), name="native-log-filter", daemon=True)
    thread.start()
    # Python's stderr goes to the real descriptor directly: nothing of ours passes through the filter.
    old = sys.stderr
    sys.stderr = os.fdopen(os.dup(real), "w", buffering=1, encoding=getattr(old, "encoding", None) or "utf-8",
                           errors="backslashreplace")
    _state.update(real=real, thread=thread, old=old)
    atexit.register(restore_native_logs)


def restore_native_logs() -> None:
    """Put descriptor 2 back and let the filter thread drain what is left (called at exit)."""
    if not _state:
        return
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(_state["real"], 2)  # closes the pipe's last write end held by this process
    _state["thread"].join(timeout=1.0)
    sys.stderr = _state["old"]
    _state.clear()
