"""Checks a training run makes before it touches its run folder: counts are positive, and an existing run is only
continued with ``--resume``. Nothing here creates a folder, so a refused run leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

# What a run folder holds once training has started (train_motion.py writes these).
RUN_FILES = ("last.pt", "log.jsonl", "tb")

# Options that count something and mean nothing below 1 (max_steps 0 used to print a checkpoint it never wrote).
COUNT_OPTIONS = ("max_steps", "batch_size", "log_every", "image_every", "ckpt_every")


def check_positive(**values: int) -> None:
    """Refuse any value below 1, naming it as the CLI flag (``max_steps`` → ``--max-steps``)."""
    for name, value in values.items():
        if value is None or int(value) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def check_train_out(out: str | Path, resume: bool) -> None:
    """Refuse to start a fresh run in a folder that holds one: it would be overwritten silently."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; the run folder must be a folder")
    if resume or not out.is_dir():
        return
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found:
        raise ConfigError(f"{out} already holds a run ({', '.join(found)}); pass --resume to continue it, "
                          f"or choose another --out")


def check_train_config(cfg) -> None:
    """Every check above for a training config (a dataclass with ``out``, ``resume`` and the count options)."""
    check_positive(**{name: getattr(cfg, name) for name in COUNT_OPTIONS if hasattr(cfg, name)})
    if getattr(cfg, "num_workers", 0) < 0:
        raise ConfigError(f"--num-workers must be 0 or more, got {cfg.num_workers}")
    check_train_out(cfg.out, cfg.resume)
