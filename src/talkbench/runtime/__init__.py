"""Generic engine, knows nothing about video: steps, filters, executors with stats and resume."""

from .executor import EXECUTORS, Executor, LocalExecutor, StageResult, make_executor, run_rank, stable_hash
from .step import Filter, Step, StepContext

__all__ = ["EXECUTORS", "Executor", "Filter", "LocalExecutor", "StageResult", "Step", "StepContext", "make_executor",
           "run_rank", "stable_hash"]
