"""Run metadata: who ran what, where, with which code; written into every `bench run` and `train` folder.

``meta.json`` in a run folder holds the latest invocation at the top level and every invocation (a resumed run is
another one) under ``invocations``. The command line is the one the CLI was given (``set_command``), so a run folder
says how to reproduce it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

_COMMAND: list[str] = []


def set_command(argv: list[str]) -> None:
    """Called by the CLI with the program name and its arguments."""
    _COMMAND[:] = [str(a) for a in argv]


def command() -> list[str]:
    return list(_COMMAND) or [os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]]


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    """The commit of the talkbench source tree when it is a git checkout (with ``+dirty`` for local changes)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def device_info(device: str | None) -> dict:
    info = {"device": device}
    if device and device.startswith("cuda"):
        try:
            import torch

            info["device_name"] = torch.cuda.get_device_name(torch.device(device))
        except Exception as exc:  # noqa: BLE001 - metadata only: say why instead of failing the run
            info["device_name"] = f"unknown ({type(exc).__name__})"
    return info


def invocation(device: str | None = None) -> dict:
    from .. import __version__

    return {"started": now(), "command": command(), "talkbench_version": __version__, "git_commit": git_commit(),
            "host": socket.gethostname(), "python": platform.python_version(), "pid": os.getpid(),
            **device_info(device)}


def write_meta(folder: str | Path, record: dict) -> Path:
    """Add one invocation ``record`` to ``folder/meta.json`` (the top level mirrors the latest)."""
    from ..manifests.io import atomic_write_text

    path = Path(folder) / "meta.json"
    history = []
    if path.exists():
        try:
            history = json.loads(path.read_text()).get("invocations", [])
        except (OSError, json.JSONDecodeError, AttributeError):
            history = []
    history = [h for h in history if h.get("started") != record.get("started") or h.get("pid") != record.get("pid")]
    history.append(record)
    atomic_write_text(path, json.dumps({**record, "invocations": history}, indent=1, sort_keys=True, default=str))
    return path
