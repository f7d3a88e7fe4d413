"""Checkpoint files of the reference models: one ``torch.save`` dict, written atomically.

Layout: ``{model, ema, opt, cfg, step, manifest_sha, rng}`` plus model-specific extras (the motion model adds
``disc``, ``aam`` and ``club``). ``cfg`` is a plain dict: ``{"model": {...architecture...}, "train": {...}, ...}``;
only the ``model`` part must match on resume. Everything in the file is tensors, numbers, strings, lists and dicts,
so it loads with ``weights_only=True``.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, TalkbenchError
from ..manifests import atomic_write_bytes

FORMAT = "talkbench-checkpoint-1"


class CheckpointError(TalkbenchError):
    """A checkpoint file is missing, unreadable, or made for another architecture."""


def rng_state() -> dict:
    state = {
        "python": list(random.getstate()[1]),
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate((3, tuple(int(v) for v in state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), int(state["numpy_pos"]), 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: str | Path, payload: dict) -> Path:
    """Write the checkpoint atomically (a reader sees the old file or the new one, never a torn one)."""
    payload = {"format": FORMAT, **payload}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise CheckpointError(f"{path}: not a readable talkbench checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: expected a {FORMAT} file, found {type(ckpt).__name__} "
                              f"with format {ckpt.get('format') if isinstance(ckpt, dict) else None!r}")
    return ckpt


def check_architecture(expected: dict, found: dict, path: str | Path) -> None:
    """Refuse to resume when any architecture key differs (nanoGPT's rule: the checkpoint decides the shape)."""
    diff = {k: (expected.get(k), found.get(k)) for k in set(expected) | set(found) if expected.get(k) != found.get(k)}
    if diff:
        detail = ", ".join(f"{k}: run wants {a!r}, checkpoint has {b!r}" for k, (a, b) in sorted(diff.items()))
        raise ConfigError(f"{path}: architecture config does not match the checkpoint ({detail})")
