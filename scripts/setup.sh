#!/usr/bin/env bash
# Set up a fresh Debian machine for talkbench: system packages, a venv in .venv, CPU torch first, then the project.
# Idempotent: rerunning it only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(ffmpeg espeak-ng sox opencv-doc chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# The Debian packages download and install in the background while pip and uv fill the venv (they share nothing);
# the script waits for them, and fails with apt's status, before its last check.
apt_pid=""
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  ( $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ) &
  apt_pid=$!
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPIP=".venv/bin/python -m pip"
# torch first: the CPU wheel on this machine; any other torch pulls gigabytes of CUDA packages.
.venv/bin/python -c "import torch" 2>/dev/null || $VPIP install -q torch==2.13.0
# uv installs the project's ~140 packages in parallel, with the versions pip picks (compared: the same freeze list):
# 35 s here against pip's 146 s, which kept CI over its 10 minutes. pip stays for the OpenCV and insightface steps.
$VPIP install -q "uv==0.13.8"
.venv/bin/uv pip install -q --python .venv/bin/python -e ".[dev]"
# One OpenCV build on purpose: scenedetect pulls opencv-python and mediapipe opencv-contrib-python; both write cv2/.
if $VPIP show -q opencv-python >/dev/null 2>&1 || $VPIP show -q opencv-python-headless >/dev/null 2>&1; then
  $VPIP uninstall -y -q opencv-python opencv-python-headless
  $VPIP install -q --force-reinstall --no-deps "opencv-contrib-python==4.11.0.86"
fi
# insightface 2.1 is pure Python; its own requirements would pull a second OpenCV, and the rest are ours already.
$VPIP install -q --no-deps "insightface==2.1"
# Bytecode: uv writes none, and Python writes it at first import, except where PYTHONDONTWRITEBYTECODE is set (it is
# on this machine): then every Python process compiles its imports again, and the test run starts about 75 of them
# (three workers, CLI subprocesses, Ray daemons and workers). Measured here: `import ray` 2.2-2.8 CPU-s without
# bytecode against 0.8 s with it; torch, pandas, scipy, ray, mediapipe and the CLI 16 s against 6 s. So in that case
# everything is compiled once, now (about 30 s on 2 cores). compileall exits 1 for files written for a newer Python
# (torch ships py312_intrinsics.py), which Python never imports.
if [ -n "${PYTHONDONTWRITEBYTECODE:-}" ]; then
  .venv/bin/python -m compileall -q -j 0 .venv/lib/python3*/site-packages src >/dev/null 2>&1 || true
fi
if [ -n "$apt_pid" ] && ! wait "$apt_pid"; then
  echo "setup: apt-get install ${missing[*]} failed" >&2; exit 1
fi
.venv/bin/python -c "import cv2, mediapipe, torch, talkbench; print('talkbench setup ok: torch', torch.__version__, 'opencv', cv2.__version__)"
