"""The spoken material of the director tests (a uniquely named module, so test files can import it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SENTENCES = ("Good morning everyone.", "Hello.", "Today we talk about plans.")
TRANSCRIPT = " ".join(SENTENCES)


def espeak(path: Path, text: str) -> Path:
    subprocess.run(["espeak-ng", "-s", "170", "-w", str(path), text], check=True, capture_output=True)
    return path
