"""talkbench: curation, pinned-protocol metrics, reference models and leaderboards for talking-head video research."""

import os as _os

# MediaPipe's C++ core logs through glog/absl at INFO/WARNING level on every graph start; keep the terminal readable.
# Set before any worker imports mediapipe (spawned workers import this package first). Users can still override.
_os.environ.setdefault("GLOG_minloglevel", "2")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
