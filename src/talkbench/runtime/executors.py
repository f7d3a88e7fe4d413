"""The executor registry: the one place that names every executor, so executor.py and ray_executor.py need not
import each other."""

from __future__ import annotations

from typing import Callable

from .executor import Executor, LocalExecutor
from .ray_executor import DEFAULT_MAX_RETRIES, RayExecutor

EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(name: str = "local", *, workers: int = 1, tasks: int | None = None, quiet: bool = False,
                  ray_address: str | None = None, ray_max_retries: int = DEFAULT_MAX_RETRIES) -> Executor:
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; choose from {sorted(EXECUTORS)}")
    options = {"address": ray_address, "max_retries": ray_max_retries} if name == "ray" else {}
    return EXECUTORS[name](workers=workers, tasks=tasks, quiet=quiet, **options)
