#!/usr/bin/env bash
# Set up a fresh Debian machine for talkbench: system packages, a venv in .venv, CPU torch first, then the project.
# Idempotent: rerunning it only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(ffmpeg espeak-ng sox opencv-doc chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
.venv/bin/python -c "import cv2, mediapipe, torch, talkbench; print('talkbench setup ok: torch', torch.__version__, 'opencv', cv2.__version__)"
