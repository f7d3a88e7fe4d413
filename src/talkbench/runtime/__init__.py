"""Generic engine, knows nothing about video: steps, filters, executors with stats and resume."""

from .executor import Executor, LocalExecutor, StageResult, run_rank, stable_hash
from .executors import EXECUTORS, make_executor
from .parts import MergedRows
from .step import Filter, Step, StepContext

__all__ = ["EXECUTORS", "Executor", "Filter", "LocalExecutor", "MergedRows", "StageResult", "Step", "StepContext",
           "make_executor", "run_rank", "stable_hash"]
